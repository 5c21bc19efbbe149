@testable import ImageFormats
import Testing

/// The map of host units a reader's tables use: runs across word boundaries, the first clash
/// reported, nothing past the clash marked, the memory budget honoured.
@Suite struct HostUseMapTests {
    @Test func marksRunsAndReportsTheFirstClash() throws {
        var map = try #require(HostUseMap(units: 1000))
        #expect(map.use(first: 0, count: 1) == nil)
        #expect(map.use(first: 60, count: 10) == nil)          // across the first word boundary
        #expect(map.use(first: 128, count: 200) == nil)        // whole words
        #expect(map.use(first: 0, count: 1) == 0)
        #expect(map.use(first: 50, count: 20) == 60)
        #expect(map.use(first: 327, count: 5) == 327)
        #expect(map.use(first: 328, count: 5) == nil, "nothing past the clash was marked")
        #expect(map.use(first: 70, count: 58) == nil)          // the gap between two runs
        #expect(map.use(first: 990, count: 100) == nil, "units past the end are ignored")
        #expect(map.use(first: UInt64.max - 1, count: 10) == nil, "no overflow")
    }

    @Test func staysWithinItsBudget() {
        // (The largest map allowed is not built here: it would take its 256 MiB.)
        #expect(HostUseMap(units: 1 << 20) != nil)
        #expect(HostUseMap(units: UInt64(HostUseMap.maximumBytes) * 8 + 64) == nil)
        #expect(HostUseMap(units: UInt64.max) == nil)
    }
}
