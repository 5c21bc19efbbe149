import Digests
import Foundation
import ImageCore
import Synchronization

/// Uploads a local file to S3 as a multipart upload: parts read with pread into memory (at most
/// `concurrency` parts at a time), each signed with its real SHA-256, several in flight; an
/// interrupted upload is resumed by sending only the parts S3 does not already hold.
///
/// The final ETag of a multipart object is `md5(md5(part 1) ‖ … ‖ md5(part N))-N`; it is
/// computed here from the bytes read and compared with S3's, so a part changed on the way (or a
/// file changed under us) is caught.
public struct S3MultipartUpload: Sendable {
    /// S3's limits: parts of 5 MiB to 5 GiB (the last may be smaller), at most 10,000 of them.
    public static let minimumPartSize: Int64 = 5 << 20
    public static let maximumPartSize: Int64 = 5 << 30
    public static let maximumParts: Int64 = 10_000
    /// Below this, fewer larger requests cost nothing and save round trips.
    public static let preferredMinimumPartSize: Int64 = 8 << 20

    public enum Resume: Sendable, Equatable {
        /// Always start a new upload.
        case never
        /// Continue the newest unfinished upload of the same key, if there is one.
        case latest
        /// Continue this upload.
        case uploadID(String)
    }

    public struct Options: Sendable {
        /// nil: chosen from the file size by `partSize(for:)`.
        public var partSize: Int64?
        /// Parts in flight at once; memory use is about `concurrency × partSize`.
        public var concurrency: Int
        public var resume: Resume
        /// Create the bucket when HEAD says it is missing.
        public var createBucket: Bool
        /// Abort the upload when sending fails, so no parts are left to pay for. Off, the upload
        /// stays for a later resume.
        public var abortOnFailure: Bool
        /// Compare S3's ETags with the MD5s computed here. Turn off for buckets encrypted with
        /// SSE-KMS or SSE-C, whose ETags are not MD5s (Content-MD5 still guards each part).
        public var verifyETags: Bool

        public init(partSize: Int64? = nil, concurrency: Int = 4, resume: Resume = .latest,
                    createBucket: Bool = false, abortOnFailure: Bool = true, verifyETags: Bool = true) {
            self.partSize = partSize
            self.concurrency = concurrency
            self.resume = resume
            self.createBucket = createBucket
            self.abortOnFailure = abortOnFailure
            self.verifyETags = verifyETags
        }
    }

    public struct Result: Sendable, Equatable {
        /// The object's ETag, unquoted; equal to the one computed locally.
        public var etag: String
        public var uploadID: String
        public var partSize: Int64
        public var partCount: Int
        /// Part numbers sent by this call (the others were already there).
        public var sentParts: [Int]
    }

    public let client: S3Client

    public init(client: S3Client) {
        self.client = client
    }

    /// At least 8 MiB, and large enough (in whole MiB) for 10,000 parts to cover `objectSize`.
    public static func partSize(for objectSize: Int64) -> Int64 {
        let mib: Int64 = 1 << 20
        let needed = (objectSize + maximumParts - 1) / maximumParts
        let rounded = (needed + mib - 1) / mib * mib
        return min(maximumPartSize, max(preferredMinimumPartSize, rounded))
    }

    /// The ETag S3 gives a multipart object made of parts with these MD5s.
    public static func multipartETag(partMD5s: [[UInt8]]) -> String {
        Digest.hex(Digest.bytes(.md5, of: partMD5s.flatMap { $0 })) + "-\(partMD5s.count)"
    }

    /// Uploads `path` to `bucket`/`key`. `progress` is called from worker threads with the bytes
    /// done so far (parts already in S3 count as done when found).
    public func upload(file path: String, bucket: String, key: String, options: Options = Options(),
                       progress: @escaping @Sendable (Int64) -> Void = { _ in }) throws -> Result {
        let size = Int64(try RawFile(path: path, mode: .readOnly).size)
        let partSize = options.partSize ?? Self.partSize(for: size)
        let partCount = size == 0 ? 1 : Int((size + partSize - 1) / partSize)
        guard partSize >= Self.minimumPartSize || partCount == 1, partSize <= Self.maximumPartSize,
              Int64(partCount) <= Self.maximumParts else {
            throw CloudError.configuration("s3 upload of \(path): a part size of \(partSize) bytes makes \(partCount) parts; "
                + "S3 wants 5 MiB to 5 GiB and at most 10000 parts")
        }

        if options.createBucket, try !client.bucketExists(bucket) { try client.createBucket(bucket) }

        var uploadID: String?
        switch options.resume {
        case .never: break
        case .latest: uploadID = try client.listMultipartUploads(bucket: bucket, key: key).last?.uploadID
        case let .uploadID(id): uploadID = id
        }
        var existing: [Int: S3Client.Part] = [:]
        if let id = uploadID {
            for part in try client.listParts(bucket: bucket, key: key, uploadID: id) { existing[part.number] = part }
        }
        let id = try uploadID ?? client.createMultipartUpload(bucket: bucket, key: key)

        do {
            let state = UploadState(partCount: partCount)
            let work = PartWork(client: client, path: path, bucket: bucket, key: key, uploadID: id, size: size,
                                partSize: partSize, existing: existing, verifyETags: options.verifyETags, state: state,
                                progress: progress)
            let threads = max(1, min(options.concurrency, partCount))
            let group = DispatchGroup()
            for _ in 0..<threads {
                group.enter()
                let thread = Thread {
                    work.run()
                    group.leave()
                }
                thread.stackSize = 1 << 20
                thread.start()
            }
            group.wait()
            let finished = try state.result()
            let expected = Self.multipartETag(partMD5s: finished.map { $0.md5 })
            let etag = try client.completeMultipartUpload(bucket: bucket, key: key, uploadID: id,
                                                          parts: finished.enumerated().map { ($0.offset + 1, $0.element.etag) })
            guard etag == expected || !options.verifyETags else {
                throw CloudError.mismatch(service: "s3", what: "ETag of \(bucket)/\(key)", sent: expected, reported: etag)
            }
            return Result(etag: etag, uploadID: id, partSize: partSize, partCount: partCount,
                          sentParts: finished.enumerated().filter { $0.element.sent }.map { $0.offset + 1 })
        } catch {
            if options.abortOnFailure { try? client.abortMultipartUpload(bucket: bucket, key: key, uploadID: id) }
            throw error
        }
    }
}

/// One part's outcome.
struct FinishedPart: Sendable {
    var etag: String
    var md5: [UInt8]
    var sent: Bool
}

/// The parts still to take, the results, the first error: shared by the workers under a lock.
final class UploadState: Sendable {
    private struct Fields {
        var next = 1
        var done: [Int: FinishedPart] = [:]
        var error: (any Error)?
        var bytes: Int64 = 0
    }
    private let fields = Mutex(Fields())
    let partCount: Int

    init(partCount: Int) { self.partCount = partCount }

    /// The next part number, or nil when all are taken or one has failed.
    func take() -> Int? {
        fields.withLock { f in
            guard f.error == nil, f.next <= partCount else { return nil }
            defer { f.next += 1 }
            return f.next
        }
    }

    func finish(_ number: Int, _ part: FinishedPart, bytes: Int64) -> Int64 {
        fields.withLock { f in
            f.done[number] = part
            f.bytes += bytes
            return f.bytes
        }
    }

    func fail(_ error: any Error) {
        fields.withLock { f in if f.error == nil { f.error = error } }
    }

    func result() throws -> [FinishedPart] {
        try fields.withLock { f in
            if let error = f.error { throw error }
            return try (1...partCount).map { number in
                guard let part = f.done[number] else {
                    throw CloudError.state(service: "s3", resource: "part \(number)", state: "missing", reason: "no worker finished it")
                }
                return part
            }
        }
    }
}

/// What a worker thread does: take a part number, read the part while hashing it, skip it when
/// S3 already holds the same bytes, else send it.
struct PartWork: Sendable {
    let client: S3Client
    let path: String
    let bucket: String
    let key: String
    let uploadID: String
    let size: Int64
    let partSize: Int64
    let existing: [Int: S3Client.Part]
    let verifyETags: Bool
    let state: UploadState
    let progress: @Sendable (Int64) -> Void

    func run() {
        do {
            let file = try RawFile(path: path, mode: .readOnly)
            while let number = state.take() {
                let offset = Int64(number - 1) * partSize
                let length = Int(min(partSize, size - offset))
                var data = Data(count: length)
                let sha256 = Digest(.sha256)
                let md5 = Digest(.md5)
                let chunk = 1 << 20
                try data.withUnsafeMutableBytes { buffer in
                    var done = 0
                    while done < length {
                        let piece = UnsafeMutableRawBufferPointer(rebasing: buffer[done..<min(length, done + chunk)])
                        let got = try file.read(into: piece, at: UInt64(offset) + UInt64(done))
                        guard got == piece.count else {
                            throw FileError.shortRead(path: path, offset: UInt64(offset) + UInt64(done), wanted: piece.count, got: got)
                        }
                        sha256.update(UnsafeRawBufferPointer(piece))
                        md5.update(UnsafeRawBufferPointer(piece))
                        done += got
                    }
                }
                let md5Bytes = md5.finishBytes()
                let md5Hex = Digest.hex(md5Bytes)
                if let held = existing[number], held.size == Int64(length), held.etag.lowercased() == md5Hex {
                    progress(state.finish(number, FinishedPart(etag: held.etag, md5: md5Bytes, sent: false), bytes: Int64(length)))
                    continue
                }
                let etag = try client.uploadPart(bucket: bucket, key: key, uploadID: uploadID, number: number,
                                                 data: data, sha256: sha256.finish(), md5: md5Bytes)
                guard etag.lowercased() == md5Hex || !verifyETags else {
                    throw CloudError.mismatch(service: "s3", what: "ETag of part \(number) of \(bucket)/\(key)", sent: md5Hex, reported: etag)
                }
                progress(state.finish(number, FinishedPart(etag: etag, md5: md5Bytes, sent: true), bytes: Int64(length)))
            }
        } catch {
            state.fail(error)
        }
    }
}
