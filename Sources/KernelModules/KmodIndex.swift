import ImageCore

/// The binary index files kmod and module-init-tools read (`modules.dep.bin`, `modules.alias.bin`,
/// `modules.symbols.bin`, `modules.builtin.bin`, `modules.builtin.alias.bin`): a map from ASCII
/// keys to lists of (priority, value), stored as a prefix-compressed trie. All integers are
/// big-endian u32.
///
/// ```
/// 0   u32 magic    0xB007F457 ("BOOTFAST", the second version of it)
/// 4   u32 version  0x00020001 (major 2 in the high half; readers check only the major)
/// 8   u32 root     node reference of the root node
/// node reference = file offset (low 28 bits) | flags (high nibble) saying which parts follow:
///   0x80000000 PREFIX   char prefix[] NUL-terminated: the label after the arc that led here
///   0x20000000 CHILDS   u8 first, u8 last, u32 child[last - first + 1] (0 = no child)
///   0x40000000 VALUES   u32 count, then count x { u32 priority, char value[] NUL-terminated }
/// ```
/// The key of a node is the concatenation, from the root, of each node's prefix and the character
/// of the arc to the next node. The root's prefix is always empty. Values are sorted by ascending
/// priority. Nodes are written children first (post-order), each child array in ascending
/// character order, so a node's children lie before it; depmod (kmod `tools/depmod.c`,
/// `index_write`) writes exactly this layout, which `write` reproduces byte for byte.
public enum KmodIndex {
    public static let magic: UInt32 = 0xB007_F457
    public static let version: UInt32 = 0x0002_0001
    static let flagPrefix: UInt32 = 0x8000_0000
    static let flagValues: UInt32 = 0x4000_0000
    static let flagChildren: UInt32 = 0x2000_0000
    static let offsetMask: UInt32 = 0x0FFF_FFFF

    /// Encodes `entries` as depmod does. Entries with the same key keep every value (duplicates
    /// too); values are ordered by priority, and among equal priorities the one given later comes
    /// first (depmod inserts each new value before the first with a priority not below its own).
    /// Keys and values end at a NUL if they contain one. Bytes above 0x7F are written as they are
    /// (kmod refuses such keys; module names and aliases are ASCII). Node offsets have 28 bits, so
    /// an index must stay below 256 MiB; a whole kernel's alias index is about 1 MiB.
    public static func write(_ entries: [(key: String, value: String, priority: UInt32)]) -> [UInt8] {
        var valuesByKey: [[UInt8]: [(priority: UInt32, value: [UInt8])]] = [:]
        for entry in entries {
            let key = Array(entry.key.utf8.prefix { $0 != 0 })
            let value = Array(entry.value.utf8.prefix { $0 != 0 })
            var list = valuesByKey[key] ?? []
            let at = list.firstIndex { $0.priority >= entry.priority } ?? list.count
            list.insert((entry.priority, value), at: at)
            valuesByKey[key] = list
        }
        let keys = valuesByKey.keys.sorted { $0.lexicographicallyPrecedes($1) }

        var out: [UInt8] = []
        func put32(_ v: UInt32) { out += [UInt8(v >> 24), UInt8(truncatingIfNeeded: v >> 16), UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)] }
        put32(magic)
        put32(version)
        put32(0)   // the root reference, filled in at the end

        // Post-order over the canonical trie of the sorted keys, with an explicit stack: a long
        // chain of keys that are prefixes of each other must not exhaust the thread's stack.
        struct Frame {
            var prefixStart: Int       // where this node's prefix begins in its keys
            var prefixEnd: Int         // where it ends (the node's key length)
            var valueKey: Int?         // index of the key that ends at this node
            var groups: [(char: UInt8, lo: Int, hi: Int)]
            var childOffsets: [UInt32] = []
        }
        func makeFrame(lo: Int, hi: Int, start: Int, isRoot: Bool) -> Frame {
            var end = start
            if !isRoot {
                // Sorted keys: the common prefix of the first and last is that of all.
                let first = keys[lo], last = keys[hi - 1]
                while end < first.count && end < last.count && first[end] == last[end] { end += 1 }
            }
            var valueKey: Int?
            var i = lo
            if keys[lo].count == end { valueKey = lo; i += 1 }
            var groups: [(char: UInt8, lo: Int, hi: Int)] = []
            while i < hi {
                let c = keys[i][end]
                var j = i + 1
                while j < hi && keys[j][end] == c { j += 1 }
                groups.append((c, i, j))
                i = j
            }
            return Frame(prefixStart: start, prefixEnd: end, valueKey: valueKey, groups: groups)
        }

        var rootReference = UInt32(out.count)
        if !keys.isEmpty {
            var stack = [makeFrame(lo: 0, hi: keys.count, start: 0, isRoot: true)]
            while let top = stack.last {
                if top.childOffsets.count < top.groups.count {
                    let g = top.groups[top.childOffsets.count]
                    stack.append(makeFrame(lo: g.lo, hi: g.hi, start: top.prefixEnd + 1, isRoot: false))
                    continue
                }
                stack.removeLast()
                var reference = UInt32(out.count)
                let sampleKey = keys[top.valueKey ?? top.groups[0].lo]
                if top.prefixEnd > top.prefixStart {
                    out += sampleKey[top.prefixStart..<top.prefixEnd]
                    out.append(0)
                    reference |= flagPrefix
                }
                if let first = top.groups.first?.char, let last = top.groups.last?.char {
                    out.append(first)
                    out.append(last)
                    var slots = [UInt32](repeating: 0, count: Int(last - first) + 1)
                    for (g, offset) in zip(top.groups, top.childOffsets) { slots[Int(g.char - first)] = offset }
                    for slot in slots { put32(slot) }
                    reference |= flagChildren
                }
                if let k = top.valueKey, let values = valuesByKey[keys[k]] {
                    put32(UInt32(values.count))
                    for v in values {
                        put32(v.priority)
                        out += v.value
                        out.append(0)
                    }
                    reference |= flagValues
                }
                if stack.isEmpty {
                    rootReference = reference
                } else {
                    stack[stack.count - 1].childOffsets.append(reference)
                }
            }
        }
        out.storeBE(rootReference, at: 8)
        return out
    }

    /// Every key of an index with its values (in file order: ascending priority). `name` names
    /// the file in errors. Each node may be reached once: a reference loop or a node shared by two
    /// parents is an error, so a hostile file cannot make this loop or blow up.
    public static func read(_ bytes: [UInt8], name: String) throws(KmodIndexError) -> [String: [(value: String, priority: UInt32)]] {
        var result: [String: [(value: String, priority: UInt32)]] = [:]
        for entry in try entries(bytes, name: name) {
            result[entry.key, default: []] += entry.values
        }
        return result
    }

    /// The keys in trie order (the order `modprobe --show`-style dumps use) with their values.
    public static func entries(_ bytes: [UInt8], name: String) throws(KmodIndexError) -> [(key: String, values: [(value: String, priority: UInt32)])] {
        guard bytes.count >= 12 else { throw .truncated(file: name, offset: 0, wanted: 12, size: bytes.count) }
        let foundMagic = bytes.loadBE(UInt32.self, at: 0)
        guard foundMagic == magic else {
            throw .badField(file: name, offset: 0, field: "magic", found: foundMagic, expected: "0xb007f457")
        }
        let foundVersion = bytes.loadBE(UInt32.self, at: 4)
        guard foundVersion >> 16 == version >> 16 else {
            throw .badField(file: name, offset: 4, field: "version", found: foundVersion, expected: "major version 2 (0x0002xxxx)")
        }
        var result: [(key: String, values: [(value: String, priority: UInt32)])] = []
        var visited = Set<UInt32>()
        // (reference, key so far, where the reference was read)
        var stack: [(reference: UInt32, key: [UInt8], from: Int)] = [(bytes.loadBE(UInt32.self, at: 8), [], 8)]
        func cString(at start: Int, what: String) throws(KmodIndexError) -> (ArraySlice<UInt8>, Int) {
            guard start < bytes.count, let end = bytes[start...].firstIndex(of: 0) else {
                throw .badNode(file: name, offset: UInt64(start), reason: "\(what) runs past the end of the file")
            }
            return (bytes[start..<end], end + 1)
        }
        while let (reference, keySoFar, from) = stack.popLast() {
            let offset = Int(reference & offsetMask)
            if offset == 0 { continue }
            guard offset >= 12, offset <= bytes.count else {
                throw .badNode(file: name, offset: UInt64(from), reason: "node reference 0x\(String(reference, radix: 16)) points outside the \(bytes.count)-byte file")
            }
            guard visited.insert(reference & offsetMask).inserted else {
                throw .badNode(file: name, offset: UInt64(from), reason: "node at byte \(offset) is reached twice (a loop or a shared node)")
            }
            var at = offset
            var key = keySoFar
            if reference & flagPrefix != 0 {
                let (prefix, next) = try cString(at: at, what: "prefix")
                key += prefix
                at = next
            }
            var children: [(reference: UInt32, key: [UInt8], from: Int)] = []
            if reference & flagChildren != 0 {
                guard bytes.count - at >= 2 else { throw .truncated(file: name, offset: UInt64(at), wanted: 2, size: bytes.count) }
                let first = bytes[at], last = bytes[at + 1]
                guard first <= last else {
                    throw .badNode(file: name, offset: UInt64(at), reason: "child range first 0x\(String(first, radix: 16)) is above last 0x\(String(last, radix: 16))")
                }
                at += 2
                let count = Int(last - first) + 1
                guard (bytes.count - at) / 4 >= count else { throw .truncated(file: name, offset: UInt64(at), wanted: count * 4, size: bytes.count) }
                for i in 0..<count {
                    let child = bytes.loadBE(UInt32.self, at: at + 4 * i)
                    if child & offsetMask != 0 { children.append((child, key + [first + UInt8(i)], at + 4 * i)) }
                }
                at += 4 * count
            }
            if reference & flagValues != 0 {
                guard bytes.count - at >= 4 else { throw .truncated(file: name, offset: UInt64(at), wanted: 4, size: bytes.count) }
                let count = Int(bytes.loadBE(UInt32.self, at: at))
                // Each value takes at least 5 bytes (priority and NUL).
                guard count <= (bytes.count - at - 4) / 5 else {
                    throw .badNode(file: name, offset: UInt64(at), reason: "\(count) values do not fit in the rest of the file")
                }
                at += 4
                var values: [(value: String, priority: UInt32)] = []
                for _ in 0..<count {
                    guard bytes.count - at >= 4 else { throw .truncated(file: name, offset: UInt64(at), wanted: 4, size: bytes.count) }
                    let priority = bytes.loadBE(UInt32.self, at: at)
                    let (value, next) = try cString(at: at + 4, what: "value")
                    values.append((String(decoding: value, as: UTF8.self), priority))
                    at = next
                }
                result.append((String(decoding: key, as: UTF8.self), values))
            }
            // Reversed, so the lowest character is visited first.
            stack += children.reversed()
        }
        return result
    }
}

public enum KmodIndexError: RehostError, Equatable {
    case truncated(file: String, offset: UInt64, wanted: Int, size: Int)
    case badField(file: String, offset: UInt64, field: String, found: UInt32, expected: String)
    case badNode(file: String, offset: UInt64, reason: String)

    public var description: String {
        switch self {
        case let .truncated(file, offset, wanted, size):
            return "\(file): module index truncated: wanted \(wanted) bytes at byte \(offset), the file has \(size)"
        case let .badField(file, offset, field, found, expected):
            return "\(file): module index \(field) at byte \(offset) is 0x\(String(found, radix: 16)), expected \(expected)"
        case let .badNode(file, offset, reason):
            return "\(file): module index node (reference at byte \(offset)): \(reason)"
        }
    }
}
