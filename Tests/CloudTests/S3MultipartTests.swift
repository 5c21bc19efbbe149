import Cloud
import Digests
import Foundation
import ImageCore
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
import TestSupport

/// Multipart uploads against a real moto in signature-checking mode: every request here is
/// signed by SigV4Signer and refused by moto if the signature is wrong.
struct S3MultipartTests {
    static let mib = 1 << 20

    /// A file of pseudo-random bytes (so parts differ and a misplaced part shows).
    static func makeFile(_ directory: TemporaryDirectory, size: Int, seed: UInt64 = 1) throws -> String {
        var generator = SplitMix(seed: seed)
        var bytes = [UInt8](repeating: 0, count: size)
        for index in stride(from: 0, to: size, by: 8) {
            var value = generator.next()
            for offset in index..<min(size, index + 8) {
                bytes[offset] = UInt8(truncatingIfNeeded: value)
                value >>= 8
            }
        }
        let path = directory.file("disk.raw")
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    static func client(_ moto: MotoServer, secret: String? = nil) -> S3Client {
        let credentials = AWSCredentials(accessKeyID: moto.accessKeyID, secretAccessKey: secret ?? moto.secretAccessKey)
        return S3Client(endpoint: moto.endpoint, signer: SigV4Signer(credentials: credentials, region: moto.region, service: "s3"),
                        http: HTTPClient(timeout: 60, retry: RetryPolicy(attempts: 2, baseDelay: 0.1)))
    }

    @Test func partSizesFollowS3Limits() {
        #expect(S3MultipartUpload.partSize(for: 0) == 8 << 20)
        #expect(S3MultipartUpload.partSize(for: 20 << 20) == 8 << 20)
        #expect(S3MultipartUpload.partSize(for: 100 << 30) == 11 << 20)  // 10.24 MiB rounded up to whole MiB
        let huge: Int64 = 5 << 40
        let part = S3MultipartUpload.partSize(for: huge)
        #expect((huge + part - 1) / part <= 10_000 && part <= 5 << 30)
    }

    @Test func uploadReadBackAndETag() throws {
        let moto = try SharedMoto.server()
        let directory = try TemporaryDirectory()
        let size = 20 * Self.mib + 12345
        let path = try Self.makeFile(directory, size: size)
        let client = Self.client(moto)
        let sent = Mutex<Int64>(0)
        // A slash and a space must survive signing. (Not a plus: moto misreads `%2B` in a path, and
        // refuses botocore's own signature of such a request too.)
        let key = "images/disk one.raw"
        let result = try S3MultipartUpload(client: client).upload(
            file: path, bucket: "etag-bucket", key: key, options: .init(createBucket: true),
            progress: { bytes in sent.withLock { $0 = max($0, bytes) } })
        #expect(result.partCount == 3 && result.partSize == 8 << 20)
        #expect(result.sentParts == [1, 2, 3])
        #expect(sent.withLock { $0 } == Int64(size))
        // The ETag is md5 of the parts' md5s, "-3"; the upload already compared it, check again here.
        let file = try Data(contentsOf: URL(fileURLWithPath: path))
        let md5s = stride(from: 0, to: size, by: 8 << 20).map { start in
            Digest.bytes(.md5, of: [UInt8](file[start..<min(size, start + (8 << 20))]))
        }
        #expect(result.etag == S3MultipartUpload.multipartETag(partMD5s: md5s))
        #expect(result.etag.hasSuffix("-3"))
        let head = try client.headObject(bucket: "etag-bucket", key: key)
        #expect(head == S3Client.ObjectInfo(size: Int64(size), etag: result.etag))
        let back = try client.getObject(bucket: "etag-bucket", key: key)
        #expect(back == file)
        #expect(try client.getObject(bucket: "etag-bucket", key: key, range: 5...9) == file[5...9])
        #expect(try client.listMultipartUploads(bucket: "etag-bucket", key: key).isEmpty)
        try client.deleteObject(bucket: "etag-bucket", key: key)
        #expect(try client.headObject(bucket: "etag-bucket", key: key) == nil)
    }

    @Test func wrongSecretIsOneLineSignatureDoesNotMatch() throws {
        let moto = try SharedMoto.server()
        try Self.client(moto).createBucket("secret-bucket")
        let wrong = Self.client(moto, secret: "not-the-secret")
        #expect {
            _ = try wrong.createMultipartUpload(bucket: "secret-bucket", key: "k")
        } throws: { error in
            let text = "\(error)"
            return text.hasPrefix("s3 create multipart upload: HTTP 403 SignatureDoesNotMatch") && !text.contains("\n")
                && !text.contains("not-the-secret") && !text.contains(moto.secretAccessKey)
        }
    }

    /// Temporary credentials: the session token is sent and signed, and moto checks it.
    @Test func sessionTokenIsSignedAndChecked() throws {
        let moto = try SharedMoto.server()
        let credentials = try SharedMoto.temporaryCredentials(moto)
        let client = S3Client(endpoint: moto.endpoint, signer: SigV4Signer(credentials: credentials, region: moto.region, service: "s3"),
                              http: HTTPClient(timeout: 60, retry: .none))
        try client.createBucket("token-bucket")
        #expect(try client.bucketExists("token-bucket"))
        var wrong = credentials
        wrong.sessionToken = "not-the-token"
        let refused = S3Client(endpoint: moto.endpoint, signer: SigV4Signer(credentials: wrong, region: moto.region, service: "s3"),
                               http: HTTPClient(timeout: 60, retry: .none))
        #expect {
            _ = try refused.createMultipartUpload(bucket: "token-bucket", key: "k")
        } throws: { error in
            "\(error)".hasPrefix("s3 create multipart upload: HTTP 400 InvalidToken") && !"\(error)".contains("not-the-token")
        }
    }

    @Test func resumeSendsOnlyMissingParts() throws {
        let moto = try SharedMoto.server()
        let directory = try TemporaryDirectory()
        let partSize = 5 * Self.mib
        let size = 3 * partSize + 1000  // four parts
        let path = try Self.makeFile(directory, size: size, seed: 7)
        let client = Self.client(moto)
        try client.createBucket("resume-bucket")
        // The interrupted run: an upload with parts 1 and 3 sent, then nothing.
        let file = try Data(contentsOf: URL(fileURLWithPath: path))
        let id = try client.createMultipartUpload(bucket: "resume-bucket", key: "disk.raw")
        for number in [1, 3] {
            let part = file[(number - 1) * partSize..<number * partSize]
            _ = try client.uploadPart(bucket: "resume-bucket", key: "disk.raw", uploadID: id, number: number, data: Data(part),
                                      sha256: Digest.hex(Digest.bytes(.sha256, of: [UInt8](part))))
        }
        // Part 2 holds other bytes of the right size: it must be sent again, not trusted.
        let bogus = Data(repeating: 0xAB, count: partSize)
        _ = try client.uploadPart(bucket: "resume-bucket", key: "disk.raw", uploadID: id, number: 2, data: bogus,
                                  sha256: Digest.hex(Digest.bytes(.sha256, of: [UInt8](bogus))))
        let result = try S3MultipartUpload(client: client).upload(
            file: path, bucket: "resume-bucket", key: "disk.raw", options: .init(partSize: Int64(partSize)))
        #expect(result.uploadID == id)
        #expect(result.sentParts == [2, 4])
        #expect(try client.getObject(bucket: "resume-bucket", key: "disk.raw") == file)
    }

    /// The uploader itself interrupted: part 3 cannot be read (the file is cut short once two
    /// parts are sent), the upload is kept, the file is whole again, and a second run sends only
    /// parts 3 and 4.
    @Test func resumeAfterAnInterruptedRun() throws {
        let moto = try SharedMoto.server()
        let directory = try TemporaryDirectory()
        let partSize = 5 * Self.mib
        let path = try Self.makeFile(directory, size: 3 * partSize + 4321, seed: 11)
        let whole = try Data(contentsOf: URL(fileURLWithPath: path))
        let client = Self.client(moto)
        let options = S3MultipartUpload.Options(partSize: Int64(partSize), concurrency: 1, createBucket: true, abortOnFailure: false)
        #expect(throws: FileError.self) {
            _ = try S3MultipartUpload(client: client).upload(file: path, bucket: "interrupted-bucket", key: "disk.raw", options: options,
                                                              progress: { bytes in
                                                                  if bytes >= 2 * partSize { _ = truncate(path, off_t(2 * partSize)) }
                                                              })
        }
        let kept = try client.listMultipartUploads(bucket: "interrupted-bucket", key: "disk.raw")
        #expect(kept.count == 1)
        try whole.write(to: URL(fileURLWithPath: path))
        let sent = Mutex<Int64>(0)
        let result = try S3MultipartUpload(client: client).upload(file: path, bucket: "interrupted-bucket", key: "disk.raw",
                                                                  options: options, progress: { bytes in sent.withLock { $0 = max($0, bytes) } })
        #expect(result.uploadID == kept.first?.uploadID)
        #expect(result.sentParts == [3, 4])
        #expect(sent.withLock { $0 } == Int64(whole.count))
        #expect(try client.getObject(bucket: "interrupted-bucket", key: "disk.raw") == whole)
        #expect(try client.listMultipartUploads(bucket: "interrupted-bucket", key: "disk.raw").isEmpty)
    }

    @Test func resumeByUploadIDAndAbortLeavesNothing() throws {
        let moto = try SharedMoto.server()
        let directory = try TemporaryDirectory()
        let path = directory.file("small.raw")
        try Data(repeating: 1, count: 1000).write(to: URL(fileURLWithPath: path))
        let client = Self.client(moto)
        try client.createBucket("abort-bucket")
        let id = try client.createMultipartUpload(bucket: "abort-bucket", key: "disk.raw")
        #expect(try client.listMultipartUploads(bucket: "abort-bucket", key: "disk.raw").map(\.uploadID) == [id])
        try client.abortMultipartUpload(bucket: "abort-bucket", key: "disk.raw", uploadID: id)
        #expect(try client.listMultipartUploads(bucket: "abort-bucket", key: "disk.raw").isEmpty)
        // A failed upload aborts its own multipart upload. The failure: the file shrinks under
        // the upload once part 1 is sent, so part 2 is a short read.
        let shrinking = try Self.makeFile(directory, size: 11 * Self.mib, seed: 3)
        #expect(throws: FileError.self) {
            _ = try S3MultipartUpload(client: client).upload(
                file: shrinking, bucket: "abort-bucket", key: "shrinking.raw",
                options: .init(partSize: Int64(5 * Self.mib), concurrency: 1, resume: .never),
                progress: { _ in _ = truncate(shrinking, 1) })
        }
        #expect(try client.listMultipartUploads(bucket: "abort-bucket", key: "shrinking.raw").isEmpty)
        // Resuming an explicit upload id that S3 no longer has fails with S3's NoSuchUpload.
        #expect {
            _ = try S3MultipartUpload(client: client).upload(file: path, bucket: "abort-bucket", key: "disk.raw",
                                                              options: .init(resume: .uploadID(id), abortOnFailure: false))
        } throws: { "\($0)".contains("NoSuchUpload") }
    }
}
