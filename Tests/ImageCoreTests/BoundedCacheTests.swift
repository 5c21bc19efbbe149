import ImageCore
import Testing

@Suite struct BoundedCacheTests {
    @Test func keepsAtMostItsCapacityAndEvictsTheLeastRecentlyUsed() throws {
        let cache = BoundedCache<Int, String>(capacity: 2)
        var built: [Int] = []
        func get(_ key: Int) -> String { cache.value(for: key) { built.append(key); return "v\(key)" } }
        #expect(get(1) == "v1" && get(2) == "v2" && get(1) == "v1")
        #expect(get(3) == "v3")  // evicts 2, used least recently
        #expect(cache.count == 2)
        #expect(get(1) == "v1" && get(2) == "v2")
        #expect(built == [1, 2, 3, 2])
    }
}
