import Dispatch
import Foundation
import Synchronization

/// A fixed set of threads for blocking requests. Not GCD's global queue: its pool grows about one
/// thread a second while every thread is blocked, so blocked senders there would start about one
/// request a second.
final class WorkerThreads: Sendable {
    private let queue = Mutex<[@Sendable () -> Void]>([])
    private let available = DispatchSemaphore(value: 0)
    /// Room for work: `submit` waits while `count` items are queued or running.
    private let room = DispatchSemaphore(value: 0)
    private let running = DispatchGroup()
    private let stopping = Mutex(false)
    private let count: Int

    init(count: Int, name: String) {
        self.count = count
        for _ in 0..<count { room.signal() }
        for index in 0..<count {
            let thread = Thread { [self] in loop() }
            thread.name = "\(name)-\(index)"
            thread.start()
        }
    }

    /// Queues `work`, waiting while every thread is busy.
    func submit(_ work: @escaping @Sendable () -> Void) {
        room.wait()
        running.enter()
        queue.withLock { $0.append(work) }
        available.signal()
    }

    /// Waits until everything submitted has run.
    func wait() { running.wait() }

    /// Lets the threads end once the queue is empty (they hold the pool until then).
    func stop() {
        stopping.withLock { $0 = true }
        for _ in 0..<count { available.signal() }
    }

    private func loop() {
        while true {
            available.wait()
            let work = queue.withLock { $0.isEmpty ? nil : $0.removeFirst() }
            guard let work else {
                if stopping.withLock({ $0 }) { return }
                continue
            }
            work()
            running.leave()
            room.signal()
        }
    }
}
