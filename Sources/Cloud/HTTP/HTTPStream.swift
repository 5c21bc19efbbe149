import Dispatch
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Glibc
import ImageFormats

/// One request whose body is written while it is sent: the bytes go through a pipe that
/// URLSession reads as the body stream, sent chunked (URLSession adds Transfer-Encoding itself; a
/// Content-Length beside it makes servers such as gunicorn refuse the request), so
/// memory stays at the pipe's 64 KiB and a slow server slows the writer. Such a body cannot be
/// sent twice: a failure is not retried here (the caller starts again, or the batch does).
public final class HTTPStream: SequentialByteSink, @unchecked Sendable {
    let request: HTTPRequest
    private let writeEnd: Int32
    private let readEnd: Int32
    private let body: InputStream
    private let box = ResultBox()
    private let task: URLSessionTask
    private var closed = false
    public private(set) var bytesWritten: UInt64 = 0

    init(session: URLSession, request: HTTPRequest) throws {
        // A write after the server has hung up must fail with EPIPE, not kill the process.
        signal(SIGPIPE, SIG_IGN)
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0, let stream = InputStream(fileAtPath: "/dev/fd/\(fds[0])") else {
            throw CloudError.transport(service: request.service, operation: request.operation, url: HTTPClient.displayURL(request.url),
                                       reason: "cannot make a pipe for the body: \(String(cString: strerror(errno)))")
        }
        readEnd = fds[0]
        writeEnd = fds[1]
        body = stream
        self.request = request
        var urlRequest = URLRequest(url: request.url)
        urlRequest.httpMethod = request.method
        for (name, value) in request.headers { urlRequest.setValue(value, forHTTPHeaderField: name) }
        urlRequest.httpBodyStream = stream
        let box = self.box
        let readEnd = fds[0]
        // Closed once, by the completion handler, after URLSession is done with it.
        nonisolated(unsafe) let bodyStream = stream
        task = session.dataTask(with: urlRequest) { data, response, error in
            // Nothing reads the pipe any more: the writer must get EPIPE rather than block.
            bodyStream.close()
            close(readEnd)
            box.set(data: data, response: response, error: error)
        }
        task.resume()
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
        if !closed {
            close(writeEnd)
            closed = true
        }
        let (data, response, error) = box.wait()
        if let error {
            throw CloudError.transport(service: request.service, operation: request.operation,
                                       url: HTTPClient.displayURL(request.url), reason: HTTPClient.describe(error))
        }
        let answer = try HTTPResponse(request, response, data)
        guard (200..<300).contains(answer.status) else {
            let (code, message) = errorMessage(answer)
            throw CloudError.http(service: request.service, operation: request.operation, status: answer.status, code: code, message: message)
        }
        return answer
    }

    /// Gives up: ends the body and drops the request.
    public func cancel() {
        task.cancel()
        if !closed {
            close(writeEnd)
            closed = true
        }
        _ = box.wait()
    }
}

extension HTTPClient {
    /// Starts `request` with a body written through the returned stream (see `HTTPStream`).
    public func stream(_ request: HTTPRequest) throws -> HTTPStream {
        try HTTPStream(session: session, request: request)
    }
}
