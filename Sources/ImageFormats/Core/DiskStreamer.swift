import Dispatch
import ImageCore
import Synchronization

/// One read of a raw disk feeding any number of writers.
///
/// Two stages overlap: a reader thread finds the data (SEEK_DATA, the zero checks, which is also
/// where the mapped pages are first touched) and queues byte ranges; the calling thread hands
/// each range to every writer, then releases it. The queue holds at most `depth` ranges, so
/// memory stays bounded.
public enum DiskStreamer {
    public static func stream(_ reader: RawDiskReader, to writers: [any DiskImageWriter], depth: Int = 16,
                              progress: (UInt64) -> Void = { _ in }) throws -> [WriterSummary] {
        for writer in writers where writer.virtualSize != reader.size {
            throw WriterError.unsupported(format: writer.format,
                                          what: "internal: writer sized \(writer.virtualSize) for a disk of \(reader.size) bytes")
        }
        let queue = RangeQueue(depth: depth)
        let producer = DispatchGroup()
        // The reader's mapping is read-only and outlives the producer (waited for below on every
        // path), so sharing it with the producer thread is safe.
        nonisolated(unsafe) let sharedReader = reader
        DispatchQueue.global().async(group: producer) {
            do {
                try sharedReader.forEachDataRange { range in
                    guard queue.put(range) else { throw CancellationError() }
                }
                queue.finish(nil)
            } catch {
                queue.finish(error)
            }
        }
        do {
            while let range = try queue.take() {
                let data = reader.bytes(range)
                for writer in writers { try writer.write(data, at: range.lowerBound) }
                reader.release(range)
                progress(range.upperBound)
            }
        } catch {
            queue.cancel()
            producer.wait()
            throw error
        }
        producer.wait()
        progress(reader.size)
        return try writers.map { try $0.finish() }
    }
}

/// A bounded single-producer, single-consumer queue of byte ranges.
final class RangeQueue: Sendable {
    private struct State {
        var ranges: [Range<UInt64>] = []
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

    /// Waits for room; false once the consumer has given up.
    func put(_ range: Range<UInt64>) -> Bool {
        slots.wait()
        let accepted = state.withLock { state -> Bool in
            guard !state.cancelled else { return false }
            state.ranges.append(range)
            return true
        }
        if accepted { items.signal() }
        return accepted
    }

    func finish(_ failure: (any Error)?) {
        state.withLock { state in
            state.done = true
            state.failure = failure
        }
        items.signal()
    }

    /// The next range; nil at the end; rethrows the producer's error.
    func take() throws -> Range<UInt64>? {
        items.wait()
        let next = try state.withLock { state throws -> Range<UInt64>? in
            if state.head < state.ranges.count {
                let range = state.ranges[state.head]
                state.head += 1
                if state.head > 1024 {
                    state.ranges.removeFirst(state.head)
                    state.head = 0
                }
                return range
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
