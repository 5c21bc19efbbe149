#if canImport(Glibc)
import Glibc
#endif

/// SIGTERM, SIGINT or SIGHUP to the batch (a cancelled array task, a pod being stopped, Ctrl-C):
/// passed on to the running conversions, which remove their partial outputs and end; each entry
/// is then recorded as interrupted (retry), and no further entry starts. A Kubernetes container's
/// first process gets the signal alone, so it has to be passed on.
enum Interruption {
    static let slotCount = 1024
    /// The pids of the running conversions, one slot per worker; 0 when free. Plain memory, set
    /// up before the handlers, because a signal handler may touch nothing that allocates or locks.
    nonisolated(unsafe) static let pids: UnsafeMutablePointer<Int32> = {
        let pointer = UnsafeMutablePointer<Int32>.allocate(capacity: slotCount)
        pointer.initialize(repeating: 0, count: slotCount)
        return pointer
    }()
    nonisolated(unsafe) static let received: UnsafeMutablePointer<Int32> = {
        let pointer = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        pointer.initialize(to: 0)
        return pointer
    }()

    static func install() {
        _ = pids
        _ = received
        var unblock = sigset_t()
        sigemptyset(&unblock)
        for sig in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&unblock, sig) }
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            Glibc.signal(sig) { received in
                Interruption.received.pointee = received
                for slot in 0..<Interruption.slotCount where Interruption.pids[slot] > 0 {
                    kill(Interruption.pids[slot], received)
                }
            }
        }
    }

    static var signal: Int32? {
        let value = received.pointee
        return value == 0 ? nil : value
    }
}
