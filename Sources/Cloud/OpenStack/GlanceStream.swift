import Digests
import Foundation
import ImageCore
import ImageFormats

/// A Glance image fed as the file is written (a qcow2 made front to back while the disk streams
/// past): nothing is written locally, and the MD5 and SHA-512 Glance will report are computed on
/// the bytes as they go. The image is created at the first byte (Keystone's token is taken
/// then too, so a long conversion before it does not age it). A stream cannot be sent twice: any
/// failure deletes the image and is reported (transient ones exit 75, for a batch to retry).
public final class GlanceStream: SequentialByteSink, @unchecked Sendable {
    let upload: GlanceUpload
    let cloud: OpenStackCloud
    let client: HTTPClient
    private var glance: GlanceClient?
    private var imageID: String?
    private var http: HTTPStream?
    private var mark = UUID().uuidString.lowercased()
    private let md5 = Digest(.md5)
    private let sha512 = Digest(.sha512)
    private let started = monotonicSeconds()

    public init(upload: GlanceUpload, cloud: OpenStackCloud, client: HTTPClient) {
        self.upload = upload
        self.cloud = cloud
        self.client = client
    }

    private func start() throws -> HTTPStream {
        if let http { return http }
        let session = try Keystone.authenticate(cloud, client: client)
        let glance = GlanceClient(session: session, client: client)
        self.glance = glance
        let id = try glance.createImage(upload.fields(mark: mark))
        imageID = id
        let stream = try glance.startUpload(imageID: id, stage: upload.method == .glanceDirect)
        http = stream
        return stream
    }

    public func append(_ bytes: UnsafeRawBufferPointer) throws {
        let stream = try start()
        md5.update(bytes)
        sha512.update(bytes)
        try stream.append(bytes)
    }

    /// Ends the data, waits for `active`, checks Glance's digests against the bytes sent.
    public func finish(retries: RetryCounter) throws -> UploadReport {
        let stream = try start()
        _ = try stream.finish(errorMessage: openStackMessage)
        guard let glance, let imageID else { throw CloudError.configuration("internal: no Glance image") }
        if upload.method == .glanceDirect { try glance.importStaged(imageID: imageID) }
        let image = try upload.waitForActive(glance, imageID)
        var report = UploadReport(target: "glance", diskFormat: upload.diskFormat)
        report.imageID = imageID
        report.name = upload.name
        report.location = glance.url("/v2/images/\(imageID)").absoluteString
        report.bytesSent = stream.bytesWritten
        try upload.check(image, md5: md5.finish(), sha512: sha512.finish(), size: stream.bytesWritten, into: &report)
        report.retries = retries.count
        report.seconds = monotonicSeconds() - started
        return report
    }

    /// Properties known only after the image was made; a failure deletes the image.
    public func setProperties(_ properties: [String: String]) throws {
        guard let glance, let imageID else { return }
        do { try glance.setProperties(imageID: imageID, properties, removing: [GlanceUpload.markProperty]) } catch {
            abort()
            throw error
        }
    }

    /// After a failure: the request dropped and the half-made image deleted.
    public func abort() {
        http?.cancel()
        guard let glance else { return }
        for leftover in Set([imageID].compactMap { $0 } + glance.imageIDs(marked: mark)) { try? glance.deleteImage(leftover) }
        imageID = nil
    }
}
