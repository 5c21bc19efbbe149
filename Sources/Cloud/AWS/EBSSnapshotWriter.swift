import Digests
import Dispatch
import Foundation
import ImageCore
import ImageFormats
import Synchronization

/// Writes the disk as it streams past into a new EBS snapshot, one `PutSnapshotBlock` per 512 KiB
/// block that holds data: blocks the stream never touches (holes, all-zero runs) are never sent,
/// and a new volume reads them as zeros. Blocks are hashed and sent by up to `parallelism`
/// threads at once, so memory stays at `parallelism` blocks whatever the disk's size.
///
/// The snapshot is started at the first block (EBS gives a started snapshot `timeout` minutes
/// to complete, and a conversion copies files first), and completed in `finish`.
public final class EBSSnapshotWriter: DiskImageWriter {
    public let format = ImageFormat.raw
    public let virtualSize: UInt64
    public private(set) var snapshotID: String?
    public private(set) var blocksSent: UInt64 = 0
    public var blocksTotal: UInt64 { (virtualSize + UInt64(blockSize) - 1) / UInt64(blockSize) }

    let ebs: EBSDirectClient
    let description: String
    let tags: [String: String]
    let clientToken: String
    let timeoutMinutes: Int
    let blockSize = EBSDirectClient.blockSize
    private var block: [UInt8]
    private var blockIndex: UInt64?
    private let senders: WorkerThreads
    private let shared = SendingState()

    /// What the sending threads share with the writer.
    private final class SendingState: Sendable {
        let hashes = Mutex<[UInt64: [UInt8]]>([:])
        let failure = Mutex<(any Error)?>(nil)
    }

    public init(virtualSize: UInt64, ebs: EBSDirectClient, description: String, tags: [String: String] = [:],
                parallelism: Int = 16, timeoutMinutes: Int = 360) {
        self.virtualSize = virtualSize
        self.ebs = ebs
        self.description = description
        self.tags = tags
        self.timeoutMinutes = timeoutMinutes
        clientToken = UUID().uuidString
        block = [UInt8](repeating: 0, count: EBSDirectClient.blockSize)
        senders = WorkerThreads(count: max(1, parallelism), name: "ebs-put-block")
    }

    /// The snapshot's size in whole GiB, as EBS takes it.
    public var volumeSizeGiB: UInt64 { max(1, (virtualSize + (1 << 30) - 1) >> 30) }

    public func write(_ data: UnsafeRawBufferPointer, at offset: UInt64) throws {
        guard offset + UInt64(data.count) <= virtualSize else {
            throw WriterError.beyondEnd(format: format, offset: offset, virtualSize: virtualSize)
        }
        var done = 0
        while done < data.count {
            let position = offset + UInt64(done)
            let index = position / UInt64(blockSize)
            if index != blockIndex {
                try send()
                blockIndex = index
            }
            let within = Int(position % UInt64(blockSize))
            let count = min(blockSize - within, data.count - done)
            block.withUnsafeMutableBytes { target in
                (target.baseAddress! + within).copyMemory(from: data.baseAddress! + done, byteCount: count)
            }
            done += count
        }
    }

    /// Hands the block being filled to a sending thread, and starts a new one.
    private func send() throws {
        guard let index = blockIndex else { return }
        if let error = shared.failure.withLock({ $0 }) { throw error }
        let snapshot = try startedSnapshot()
        let data = Data(block)
        block.withUnsafeMutableBytes { $0.initializeMemory(as: UInt8.self, repeating: 0) }
        blockIndex = nil
        blocksSent += 1
        senders.submit { [ebs, shared] in
            guard shared.failure.withLock({ $0 == nil }) else { return }
            let sha256 = data.withUnsafeBytes { Digest.bytes(.sha256, of: $0) }
            shared.hashes.withLock { $0[index] = sha256 }
            do {
                try ebs.putBlock(snapshotID: snapshot, index: index, data: data, sha256: sha256)
            } catch {
                shared.failure.withLock { if $0 == nil { $0 = error } }
            }
        }
    }

    private func startedSnapshot() throws -> String {
        if let snapshotID { return snapshotID }
        let id = try ebs.startSnapshot(volumeSizeGiB: volumeSizeGiB, clientToken: clientToken, description: description,
                                       tags: tags, timeoutMinutes: timeoutMinutes)
        snapshotID = id
        return id
    }

    /// The linear SHA-256 aggregate sent with CompleteSnapshot, base64.
    public private(set) var aggregateChecksum: String?

    /// Waits for the blocks in flight (after a failure, before the snapshot is deleted).
    public func waitForSends() {
        senders.wait()
        senders.stop()
    }

    public func finish() throws -> WriterSummary {
        try send()
        waitForSends()
        if let error = shared.failure.withLock({ $0 }) { throw error }
        let snapshot = try startedSnapshot()
        let ordered = shared.hashes.withLock { $0.sorted { $0.key < $1.key }.flatMap(\.value) }
        let aggregate = Digest.bytes(.sha256, of: ordered)
        aggregateChecksum = Data(aggregate).base64EncodedString()
        let status = try ebs.completeSnapshot(snapshotID: snapshot, changedBlocks: blocksSent, aggregateSHA256: aggregate)
        guard status == "completed" || status == "pending" else {
            throw CloudError.state(service: "ebs", resource: "snapshot \(snapshot)", state: status, reason: "CompleteSnapshot did not accept it")
        }
        return WriterSummary(format: .raw, variant: "EBS snapshot \(snapshot)", virtualSize: virtualSize,
                             fileSize: blocksSent * UInt64(blockSize), allocatedUnits: blocksSent, unitSize: UInt64(blockSize))
    }
}
