import Foundation
import ImageCore
import ImageFormats
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The streamer between a decoding reader and its writers: a fast reader and a slow writer, so
/// the reader runs as far ahead as the queue lets it, and every byte the writer sees is checked
/// at the moment it sees it (a ring slot reused too early shows up as another piece's bytes).
struct DiskStreamerTests {
    /// Each 512-byte sector of the disk is filled with its own number; every other MiB is zeros,
    /// which the streamer leaves out.
    static func sectorByte(_ offset: UInt64) -> UInt8 { UInt8(truncatingIfNeeded: offset / 512 &* 31 &+ 7) }

    final class PatternReader: DiskImageReader {
        let format = ImageFormat.qcow2
        let path = "pattern"
        let virtualSize: UInt64
        let variant = "test pattern"
        let pieceSize: Int

        init(virtualSize: UInt64, pieceSize: Int) {
            self.virtualSize = virtualSize
            self.pieceSize = pieceSize
        }

        func forEachDataPiece(_ body: (UInt64, UnsafeRawBufferPointer) throws -> Void) throws {
            var buffer = [UInt8](repeating: 0, count: pieceSize)
            var offset: UInt64 = 0
            while offset < virtualSize {
                let count = Int(min(UInt64(pieceSize), virtualSize - offset))
                for index in 0..<count {
                    let at = offset + UInt64(index)
                    buffer[index] = (at >> 20) % 2 == 0 ? DiskStreamerTests.sectorByte(at) : 0
                }
                try buffer.withUnsafeBytes { try body(offset, UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                offset += UInt64(count)
            }
        }
    }

    final class CheckingWriter: DiskImageWriter {
        let format = ImageFormat.raw
        let virtualSize: UInt64
        var seen: UInt64 = 0
        var wrongBytes: [UInt64] = []
        var lastEnd: UInt64 = 0

        init(virtualSize: UInt64) { self.virtualSize = virtualSize }

        func write(_ data: UnsafeRawBufferPointer, at offset: UInt64) throws {
            usleep(200)  // slower than the reader, so the queue fills
            #expect(offset >= lastEnd)
            for index in stride(from: 0, to: data.count, by: 512)
            where data[index] != DiskStreamerTests.sectorByte(offset + UInt64(index)) {
                wrongBytes.append(offset + UInt64(index))
            }
            seen += UInt64(data.count)
            lastEnd = offset + UInt64(data.count)
        }

        func finish() throws -> WriterSummary {
            WriterSummary(format: format, variant: "check", virtualSize: virtualSize, fileSize: 0, allocatedUnits: 0, unitSize: 0)
        }
    }

    @Test(arguments: [1 << 20, 3 << 20, 8 << 20, 4096 * 3])
    func aSlowWriterSeesEveryByteAsTheReaderMadeIt(pieceSize: Int) throws {
        let size: UInt64 = 96 << 20
        let writer = CheckingWriter(virtualSize: size)
        _ = try DiskStreamer.stream(PatternReader(virtualSize: size, pieceSize: pieceSize), to: [writer], depth: 4)
        let wrongSectors = writer.wrongBytes.count
        #expect(wrongSectors == 0, "sectors held another piece's bytes, the first at byte \(writer.wrongBytes.first ?? 0)")
        #expect(writer.seen == size / 2, "only the non-zero half of the disk is handed on")
    }

    @Test func aFailingWriterStopsTheReader() throws {
        final class FailingWriter: DiskImageWriter {
            let format = ImageFormat.raw
            let virtualSize: UInt64
            init(virtualSize: UInt64) { self.virtualSize = virtualSize }
            func write(_ data: UnsafeRawBufferPointer, at offset: UInt64) throws {
                if offset >= 10 << 20 { throw FileError.write(path: "out", offset: offset, errno: ENOSPC) }
            }
            func finish() throws -> WriterSummary { fatalError("finish after a failure") }
        }
        let size: UInt64 = 64 << 20
        #expect(throws: FileError.write(path: "out", offset: 10 << 20, errno: ENOSPC)) {
            _ = try DiskStreamer.stream(PatternReader(virtualSize: size, pieceSize: 1 << 20), to: [FailingWriter(virtualSize: size)], depth: 2)
        }
    }
}
