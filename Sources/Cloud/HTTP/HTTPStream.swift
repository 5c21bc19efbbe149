import Curl
import Dispatch
import Foundation
import Glibc
import ImageFormats
import Synchronization

/// One request whose body is written while it is sent: the bytes go through a pipe whose read
/// end libcurl reads, on a thread of the request's own, as a body of unknown length, sent chunked
/// (Transfer-Encoding only: a Content-Length beside it makes servers such as gunicorn refuse the
/// request). Memory stays at the pipe's size (1 MiB when the system allows, else 64 KiB) and a
/// slow server slows the writer. When the request ends early (the server answered or hung up),
/// the read end is closed, so a writer gets EPIPE instead of blocking, and `append` reports the
/// answer. Such a body cannot be sent twice: a failure is not retried here (the caller starts
/// again, or the batch does).
public final class HTTPStream: SequentialByteSink, @unchecked Sendable {
    let request: HTTPRequest
    private let writeEnd: Int32
    private let answer = StreamAnswer()
    private let cancelled: CancelFlag
    private var closed = false
    public private(set) var bytesWritten: UInt64 = 0

    init(client: HTTPClient, request: HTTPRequest) throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            throw CloudError.transport(service: request.service, operation: request.operation, url: HTTPClient.displayURL(request.url),
                                       reason: "cannot make a pipe for the body: \(String(cString: strerror(errno)))")
        }
        let readEnd = fds[0]
        writeEnd = fds[1]
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        // F_SETPIPE_SZ (1031; Glibc declares it only under _GNU_SOURCE): fewer, larger reads for
        // libcurl's 1 MiB upload buffer. The default 64 KiB works too.
        _ = fcntl(writeEnd, 1031, Int32(1 << 20))
        self.request = request
        let cancelled = CancelFlag()
        self.cancelled = cancelled
        let transfer = client.transfer(request, body: .stream(read: { buffer in
            while true {
                let count = read(readEnd, buffer.baseAddress, buffer.count)
                if count > 0 { return count }
                if count < 0, errno == EINTR { continue }
                // The end of the body, unless the writer gave up (then the request is dropped).
                return count == 0 && !cancelled.isSet ? 0 : nil
            }
        }))
        let curl = client.curl
        let answer = self.answer
        // A thread of its own, not GCD's global queue: its pool grows about one thread a second
        // while every thread is blocked.
        let thread = Thread {
            let result: Result<CurlResponse, CurlError>
            do throws(CurlError) {
                result = .success(try curl.perform(transfer, progress: { _ in !cancelled.isSet }))
            } catch {
                result = .failure(error)
            }
            // Nothing reads the pipe any more: the writer must get EPIPE rather than block.
            close(readEnd)
            answer.set(result)
        }
        thread.name = "http-stream"
        thread.start()
    }

    public func append(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let written = write(writeEnd, bytes.baseAddress! + done, bytes.count - done)
            if written < 0 {
                if errno == EINTR { continue }
                // The request ended early: its answer says why.
                _ = try finish()
                throw CloudError.transport(service: request.service, operation: request.operation,
                                           url: HTTPClient.displayURL(request.url), reason: "the server stopped reading the body")
            }
            done += written
        }
        bytesWritten += UInt64(bytes.count)
    }

    /// Ends the body and waits for the answer; statuses other than 2xx become `CloudError.http`.
    public func finish(errorMessage: (HTTPResponse) -> (code: String?, message: String) = HTTPClient.plainMessage) throws -> HTTPResponse {
        closeBody()
        let answer: CurlResponse
        switch self.answer.wait() {
        case let .failure(error):
            throw CloudError.transport(service: request.service, operation: request.operation,
                                       url: HTTPClient.displayURL(request.url), reason: HTTPClient.describe(error))
        case let .success(response):
            answer = response
        }
        let response = HTTPResponse(status: answer.status, headers: answer.headers, body: answer.body)
        guard (200..<300).contains(response.status) else {
            let (code, message) = errorMessage(response)
            throw CloudError.http(service: request.service, operation: request.operation, status: response.status, code: code, message: message)
        }
        return response
    }

    /// Gives up: ends the body and drops the request.
    public func cancel() {
        cancelled.set()
        closeBody()
        _ = answer.wait()
    }

    /// Dropped without `finish` or `cancel`: the request is dropped too, so its thread ends.
    deinit {
        if !closed {
            cancelled.set()
            close(writeEnd)
        }
    }

    private func closeBody() {
        if !closed {
            close(writeEnd)
            closed = true
        }
    }
}

extension HTTPClient {
    /// Starts `request` with a body written through the returned stream (see `HTTPStream`).
    public func stream(_ request: HTTPRequest) throws -> HTTPStream {
        try HTTPStream(client: self, request: request)
    }
}

/// Set once by the writer, read by the request's thread.
final class CancelFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
}

/// Hands the request's outcome to the thread waiting for it (any number of waits).
final class StreamAnswer: Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let result = Mutex<Result<CurlResponse, CurlError>?>(nil)

    func set(_ outcome: Result<CurlResponse, CurlError>) {
        result.withLock { $0 = outcome }
        done.signal()
    }

    func wait() -> Result<CurlResponse, CurlError> {
        done.wait()
        done.signal()
        return result.withLock { $0! }
    }
}
