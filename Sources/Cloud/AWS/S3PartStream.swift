import Digests
import Foundation
import ImageFormats
import Synchronization

/// An S3 multipart upload fed in order, as a streamed output is written (a streamOptimized VMDK
/// made while the disk streams past): each full part is hashed and sent by one of `concurrency`
/// threads while the next fills, so memory stays at about `concurrency + 1` parts and nothing is
/// written locally. The upload starts at the first byte; `finish` completes it and checks S3's
/// ETag against the MD5s computed here; `abort` removes the parts of a failed run.
public final class S3PartStream: SequentialByteSink {
    let client: S3Client
    public let bucket: String
    public let key: String
    let partSize: Int
    let createBucket: Bool
    private var buffer: [UInt8] = []
    private var uploadID: String?
    private var partCount = 0
    public private(set) var bytes: UInt64 = 0
    private let senders: WorkerThreads
    private let shared = Shared()

    private final class Shared: Sendable {
        let parts = Mutex<[Int: (etag: String, md5: [UInt8])]>([:])
        let failure = Mutex<(any Error)?>(nil)
    }

    /// `expectedSize` bounds the stream's length (a VMDK of a disk is at most a little over the
    /// disk): the part size is chosen from it so 10,000 parts always suffice.
    public init(client: S3Client, bucket: String, key: String, expectedSize: UInt64, concurrency: Int = 4, createBucket: Bool = false) {
        self.client = client
        self.bucket = bucket
        self.key = key
        self.createBucket = createBucket
        partSize = Int(S3MultipartUpload.partSize(for: Int64(min(expectedSize, UInt64(Int64.max)))))
        senders = WorkerThreads(count: max(1, concurrency), name: "s3-upload-part")
        buffer.reserveCapacity(partSize)
    }

    public func append(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let count = min(partSize - buffer.count, bytes.count - done)
            buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[done..<(done + count)]))
            done += count
            if buffer.count == partSize { try sendPart() }
        }
        self.bytes += UInt64(bytes.count)
    }

    private func sendPart() throws {
        if let error = shared.failure.withLock({ $0 }) { throw error }
        let id = try started()
        partCount += 1
        let number = partCount
        let data = Data(buffer)
        buffer.removeAll(keepingCapacity: true)
        senders.submit { [client, bucket, key, shared] in
            guard shared.failure.withLock({ $0 == nil }) else { return }
            let (sha256, md5) = data.withUnsafeBytes { (Digest.hex(Digest.bytes(.sha256, of: $0)), Digest.bytes(.md5, of: $0)) }
            do {
                let etag = try client.uploadPart(bucket: bucket, key: key, uploadID: id, number: number, data: data, sha256: sha256, md5: md5)
                shared.parts.withLock { $0[number] = (etag, md5) }
            } catch {
                shared.failure.withLock { if $0 == nil { $0 = error } }
            }
        }
    }

    private func started() throws -> String {
        if let uploadID { return uploadID }
        if createBucket, try !client.bucketExists(bucket) { try client.createBucket(bucket) }
        let id = try client.createMultipartUpload(bucket: bucket, key: key)
        uploadID = id
        return id
    }

    /// Sends the last part, completes the upload and returns S3's ETag (checked).
    public func finish() throws -> String {
        if !buffer.isEmpty || partCount == 0 { try sendPart() }
        senders.wait()
        senders.stop()
        if let error = shared.failure.withLock({ $0 }) { throw error }
        let parts = shared.parts.withLock { $0 }
        let ordered = try (1...partCount).map { number in
            guard let part = parts[number] else {
                throw CloudError.state(service: "s3", resource: "part \(number)", state: "missing", reason: "it was never sent")
            }
            return part
        }
        let expected = S3MultipartUpload.multipartETag(partMD5s: ordered.map(\.md5))
        let etag = try client.completeMultipartUpload(bucket: bucket, key: key, uploadID: try started(),
                                                      parts: ordered.enumerated().map { ($0.offset + 1, $0.element.etag) })
        guard etag == expected else {
            throw CloudError.mismatch(service: "s3", what: "ETag of \(bucket)/\(key)", sent: expected, reported: etag)
        }
        return etag
    }

    /// After a failure: waits for the parts in flight and aborts the upload.
    public func abort() {
        senders.wait()
        senders.stop()
        if let uploadID { try? client.abortMultipartUpload(bucket: bucket, key: key, uploadID: uploadID) }
        uploadID = nil
    }
}

/// A format writer whose sink is an upload: the disk goes through the writer and the bytes it
/// makes go straight to the cloud; `finish` finishes both.
public final class StreamedUploadWriter: DiskImageWriter {
    let inner: any DiskImageWriter
    let completion: () throws -> Void

    public init(_ inner: any DiskImageWriter, completion: @escaping () throws -> Void) {
        self.inner = inner
        self.completion = completion
    }

    public var format: ImageFormat { inner.format }
    public var virtualSize: UInt64 { inner.virtualSize }

    public func write(_ data: UnsafeRawBufferPointer, at offset: UInt64) throws {
        try inner.write(data, at: offset)
    }

    public func finish() throws -> WriterSummary {
        let summary = try inner.finish()
        try completion()
        return summary
    }
}
