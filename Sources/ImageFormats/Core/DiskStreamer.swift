import Digests
import Dispatch
import ImageCore
import Synchronization

/// One read of a disk feeding any number of writers.
///
/// Two stages overlap: a reader thread finds the data and queues it; the calling thread hands
/// each piece to every writer. The queue holds at most `depth` pieces, so memory stays bounded.
/// - A raw disk is read memory-mapped: the reader thread finds the data (SEEK_DATA, the zero
///   checks, which is also where the mapped pages are first touched) and queues byte ranges of
///   the mapping, released once every writer has them.
/// - Any other format is decoded by its `DiskImageReader` on the reader thread; the non-zero
///   runs of each piece are copied into a ring of `depth + 1` buffers. Slot `n % (depth + 1)`
///   is free again once the queue has room for piece `n`: the consumer has then taken piece
///   `n - depth`, which means it has finished with piece `n - depth - 1`, the slot's last user.
///
/// A `DiskDigest` given to `stream` is fed on the reader thread, right after the zero checks have
/// brought each piece into cache: the digest of the disk's contents costs no read of its own and
/// runs beside the writers rather than in front of them.
public enum DiskStreamer {
    /// Writers never get an all-zero block of this size aligned to it: the raw reader leaves
    /// them out, and so does the filter on decoded formats (allocated but zero clusters).
    public static let zeroGranularity = 65536
    static let slotSize = 1 << 20

    public static func stream(_ reader: RawDiskReader, to writers: [any DiskImageWriter], digest: DiskDigest? = nil,
                              depth: Int = 16, progress: (UInt64) -> Void = { _ in }) throws -> [WriterSummary] {
        try checkSizes(writers, virtualSize: reader.size)
        // The reader's mapping is read-only and outlives the producer (waited for on every path).
        nonisolated(unsafe) let sharedReader = reader
        // Only the reader thread touches the digest until `run` has waited for it.
        nonisolated(unsafe) let digest = digest
        return try run(depth: depth, writers: writers, virtualSize: reader.size, progress: progress,
                       produce: { queue in
                           try sharedReader.forEachDataRange(zeroGranularity: zeroGranularity) { range in
                               digest?.update(sharedReader.bytes(range), at: range.lowerBound)
                               guard queue.reserve() else { throw CancellationError() }
                               queue.put(Piece(offset: range.lowerBound, count: Int(range.upperBound - range.lowerBound), slot: nil))
                           }
                       },
                       bytes: { piece in reader.bytes(piece.range) },
                       done: { piece in reader.release(piece.range) })
    }

    public static func stream(_ reader: any DiskImageReader, to writers: [any DiskImageWriter], digest: DiskDigest? = nil,
                              depth: Int = 16, progress: (UInt64) -> Void = { _ in }) throws -> [WriterSummary] {
        if let raw = reader as? RawDiskReader { return try stream(raw, to: writers, digest: digest, depth: depth, progress: progress) }
        try checkSizes(writers, virtualSize: reader.virtualSize)
        let slots = depth + 1
        let ring = UnsafeMutableRawBufferPointer.allocate(byteCount: slots * slotSize, alignment: 4096)
        defer { ring.deallocate() }
        // The producer writes a slot only while the consumer cannot be reading it (see above);
        // both are done with the ring before it is freed.
        nonisolated(unsafe) let sharedRing = ring
        nonisolated(unsafe) let sharedReader = reader
        nonisolated(unsafe) let digest = digest
        return try run(depth: depth, writers: writers, virtualSize: reader.virtualSize, progress: progress,
                       produce: { queue in
                           var sequence = 0
                           try sharedReader.forEachDataPiece { offset, data in
                               try ZeroDetection.forEachNonZeroRun(in: data, at: offset, granularity: zeroGranularity) { runOffset, run in
                                   digest?.update(run, at: runOffset)
                                   var done = 0
                                   while done < run.count {
                                       // Room in the queue first: only then is the slot free.
                                       guard queue.reserve() else { throw CancellationError() }
                                       let count = min(slotSize, run.count - done)
                                       let slot = sequence % slots
                                       sequence += 1
                                       let target = sharedRing.baseAddress! + slot * slotSize
                                       target.copyMemory(from: run.baseAddress! + done, byteCount: count)
                                       queue.put(Piece(offset: runOffset + UInt64(done), count: count, slot: slot))
                                       done += count
                                   }
                               }
                           }
                       },
                       bytes: { piece in
                           UnsafeRawBufferPointer(start: ring.baseAddress! + piece.slot! * slotSize, count: piece.count)
                       },
                       done: { _ in })
    }

    private static func checkSizes(_ writers: [any DiskImageWriter], virtualSize: UInt64) throws {
        for writer in writers where writer.virtualSize != virtualSize {
            throw WriterError.unsupported(format: writer.format,
                                          what: "internal: writer sized \(writer.virtualSize) for a disk of \(virtualSize) bytes")
        }
    }

    private static func run(depth: Int, writers: [any DiskImageWriter], virtualSize: UInt64,
                            progress: (UInt64) -> Void,
                            produce: @escaping @Sendable (PieceQueue) throws -> Void,
                            bytes: (Piece) -> UnsafeRawBufferPointer,
                            done: (Piece) -> Void) throws -> [WriterSummary] {
        let queue = PieceQueue(depth: depth)
        let producer = DispatchGroup()
        DispatchQueue.global().async(group: producer) {
            do {
                try produce(queue)
                queue.finish(nil)
            } catch {
                queue.finish(error)
            }
        }
        do {
            while let piece = try queue.take() {
                let data = bytes(piece)
                for writer in writers { try writer.write(data, at: piece.offset) }
                done(piece)
                progress(piece.range.upperBound)
            }
        } catch {
            queue.cancel()
            producer.wait()
            throw error
        }
        producer.wait()
        progress(virtualSize)
        return try writers.map { try $0.finish() }
    }
}

/// A run of disk bytes on its way to the writers: in the mapping (raw), or in a ring slot.
struct Piece: Sendable {
    var offset: UInt64
    var count: Int
    var slot: Int?
    var range: Range<UInt64> { offset..<(offset + UInt64(count)) }
}

/// A bounded single-producer, single-consumer queue of pieces.
final class PieceQueue: Sendable {
    private struct State {
        var pieces: [Piece] = []
        var head = 0
        var done = false
        var cancelled = false
        var failure: (any Error)?
    }

    private let state = Mutex(State())
    private let slots = DispatchSemaphore(value: 0)
    private let items = DispatchSemaphore(value: 0)

    init(depth: Int) {
        // libdispatch traps when a semaphore is freed with a value below its initial one, which
        // a cancelled stream leaves behind: start from zero and add the room by signalling.
        for _ in 0..<depth { slots.signal() }
    }

    /// Waits for room for one more piece; false once the consumer has given up. Room means the
    /// consumer has taken the piece `depth` places back.
    func reserve() -> Bool {
        slots.wait()
        return state.withLock { !$0.cancelled }
    }

    /// Queues a piece in the room `reserve` made.
    func put(_ piece: Piece) {
        state.withLock { $0.pieces.append(piece) }
        items.signal()
    }

    func finish(_ failure: (any Error)?) {
        state.withLock { state in
            state.done = true
            state.failure = failure
        }
        items.signal()
    }

    /// The next piece; nil at the end; rethrows the producer's error.
    func take() throws -> Piece? {
        items.wait()
        let next = try state.withLock { state throws -> Piece? in
            if state.head < state.pieces.count {
                let piece = state.pieces[state.head]
                state.head += 1
                if state.head > 1024 {
                    state.pieces.removeFirst(state.head)
                    state.head = 0
                }
                return piece
            }
            if let failure = state.failure { throw failure }
            return nil
        }
        if next != nil { slots.signal() }
        return next
    }

    /// The consumer stops: a producer waiting for room wakes up and stops too.
    func cancel() {
        state.withLock { $0.cancelled = true }
        slots.signal()
    }
}
