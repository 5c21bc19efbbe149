import ImageCore
import Testing

@Suite struct ByteOrderTests {
    @Test func storesLittleEndianAtOffset() {
        var bytes = [UInt8](repeating: 0xaa, count: 8)
        bytes.storeLE(UInt32(0x1122_3344), at: 1)
        #expect(bytes == [0xaa, 0x44, 0x33, 0x22, 0x11, 0xaa, 0xaa, 0xaa])
        bytes.storeLE(UInt16(0xbeef), at: 6)
        #expect(Array(bytes[6...]) == [0xef, 0xbe])
    }

    @Test func storesBigEndianAtOffset() {
        var bytes = [UInt8](repeating: 0, count: 10)
        bytes.storeBE(UInt64(0x0102_0304_0506_0708), at: 2)
        #expect(bytes == [0, 0, 1, 2, 3, 4, 5, 6, 7, 8])
    }

    @Test func loadsWhatWasStored() {
        var bytes = [UInt8](repeating: 0, count: 16)
        bytes.storeLE(UInt64(0xfedc_ba98_7654_3210), at: 3)
        #expect(bytes.loadLE(UInt64.self, at: 3) == 0xfedc_ba98_7654_3210)
        #expect(bytes.loadBE(UInt64.self, at: 3) == 0x1032_5476_98ba_dcfe)
        bytes.storeBE(Int32(-2), at: 11)
        #expect(bytes.loadBE(Int32.self, at: 11) == -2)
        #expect(bytes.loadLE(UInt32.self, at: 11) == 0xfeff_ffff)
        #expect(bytes.loadLE(UInt8.self, at: 3) == 0x10)
    }

    @Test func readsKnownOnDiskValues() {
        // The ext2 magic as stored on disk, and the qcow2 magic "QFI\xfb" read big-endian.
        #expect([0x53, 0xef].loadLE(UInt16.self, at: 0) == 0xef53)
        #expect([0x51, 0x46, 0x49, 0xfb].loadBE(UInt32.self, at: 0) == 0x5146_49fb)
    }
}
