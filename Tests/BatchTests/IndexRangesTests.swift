@testable import Batch
import Testing

@Suite struct IndexRangesTests {
    @Test func formatsSortedRangesAndParsesThemBack() {
        let cases: [([Int], String)] = [
            ([9, 0, 1, 2, 3, 7, 10, 11, 3, 0], "0-3,7,9-11"),
            ([5], "5"),
            ([4, 5], "4-5"),
            ([8, 6, 4], "4,6,8"),
            ([1, 1, 1], "1"),
            ([1000, 999, 0], "0,999-1000"),
        ]
        for (indices, text) in cases {
            #expect(IndexRanges.format(indices) == text)
            #expect(IndexRanges.parse(text) == Array(Set(indices)).sorted())
        }
        #expect(IndexRanges.format([]) == "")
        #expect(IndexRanges.parse("0-3,7,9-11") == [0, 1, 2, 3, 7, 9, 10, 11])
    }

    @Test func parseRejectsWhatFormatNeverWrites() {
        for text in ["1-", "-1", "a", "3-1", "1:2", "%4", "0-3%4", "1,,2", "1,", "1-2-3", "0-3:2", " 1", ""] {
            #expect(IndexRanges.parse(text) == nil, "\(text)")
        }
    }

    @Test func shardsSplitEntriesByRemainder() throws {
        let shard = try #require(Shard("1/4"))
        #expect(shard.index == 1 && shard.count == 4)
        #expect((0..<12).filter(shard.contains) == [1, 5, 9])
        let only = try #require(Shard("0/1"))
        #expect((0..<3).allSatisfy(only.contains))
        // Every entry in exactly one shard.
        let shards = (0..<3).compactMap { Shard("\($0)/3") }
        #expect(shards.count == 3)
        for entry in 0..<20 { #expect(shards.filter { $0.contains(entry) }.count == 1) }
        for bad in ["4/4", "0/0", "1", "a/b", "-1/4", "1/4/2", "1/-4", "/4", ""] {
            #expect(Shard(bad) == nil, "\(bad)")
        }
    }
}
