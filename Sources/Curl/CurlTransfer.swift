import CCurl
import Foundation
import Glibc
import Synchronization

/// One HTTP/1.1 request for `CurlSession.perform`: what libcurl's easy API is told before
/// `curl_easy_perform`.
public struct CurlTransfer: Sendable {
    /// Where the request body comes from.
    public enum Body: Sendable {
        case none
        /// Bytes in memory, sent with a Content-Length.
        case bytes(Data)
        /// `length` bytes of an open file from offset 0, read with `pread` (so a retry on a fresh
        /// connection can rewind), sent with a Content-Length. The caller keeps the descriptor open
        /// until `perform` returns and closes it.
        case file(descriptor: Int32, length: Int64)
        /// A body of unknown length, sent chunked: `read` fills the buffer it is given (blocking
        /// while it waits for bytes) and returns the count, 0 at the end, or nil to abort the
        /// request. It runs on the thread that called `perform`. Such a body cannot be rewound.
        case stream(read: @Sendable (UnsafeMutableRawBufferPointer) -> Int?)
    }

    public var method: String
    public var url: String
    /// Sent as given, in no particular order. A request without a Content-Type is sent without
    /// one (libcurl would otherwise label a POST form-urlencoded).
    public var headers: [String: String]
    public var body: Body
    /// The most seconds to wait for the TCP and TLS handshakes.
    public var connectTimeout: Double
    /// The request fails when no byte moves either way for this many seconds (libcurl's low-speed
    /// limit of 1 byte/s): an idle time, not a total.
    public var idleTimeout: Double

    public init(method: String, url: String, headers: [String: String] = [:], body: Body = .none,
                connectTimeout: Double = 60, idleTimeout: Double = 300) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
    }
}

/// The server's answer.
public struct CurlResponse: Sendable {
    public var status: Int
    /// Header names lower-cased; a header given twice has its values joined with ", ".
    public var headers: [String: String]
    public var body: Data
    /// Request body bytes sent.
    public var bytesSent: Int64
}

/// A request that got no answer: libcurl's code (`CURLcode`) and message, one line.
public struct CurlError: Error, Sendable, CustomStringConvertible {
    public let code: Int
    public let message: String
    /// True when the request was stopped by the caller (the progress callback or a stream body).
    public var isAborted: Bool { code == Int(CURLE_ABORTED_BY_CALLBACK.rawValue) }
    public var description: String { message }
}

/// A small pool of libcurl easy handles shared by threads: each `perform` takes one (or makes
/// one), runs the whole request on the calling thread, and gives it back, so the connection it
/// holds open is reused by the next request to the same host.
public final class CurlSession: Sendable {
    /// `curl_easy_init` handles not in use, as bit patterns (a pointer is not `Sendable`; only
    /// the thread that took one out uses it).
    private let idle = Mutex<[UInt]>([])
    private let keepIdle: Int

    /// `keepIdle`: how many unused handles (and their connections) to keep.
    public init(keepIdle: Int = 64) {
        _ = CurlSession.global
        self.keepIdle = keepIdle
    }

    deinit {
        for bits in idle.withLock({ $0 }) {
            if let handle = UnsafeMutableRawPointer(bitPattern: bits) { curl_easy_cleanup(handle) }
        }
    }

    /// `curl_global_init`, once; SIGPIPE ignored, so a write to a connection the server closed
    /// fails with EPIPE instead of ending the process (CURLOPT_NOSIGNAL keeps libcurl from
    /// handling signals itself).
    private static let global: Void = {
        signal(SIGPIPE, SIG_IGN)
        let code = curl_global_init(rehost_curl_global_default())
        precondition(code == CURLE_OK, "curl_global_init failed: \(String(cString: curl_easy_strerror(code)))")
    }()

    private func take() -> UnsafeMutableRawPointer {
        if let bits = idle.withLock({ $0.popLast() }), let handle = UnsafeMutableRawPointer(bitPattern: bits) { return handle }
        guard let handle = curl_easy_init() else { fatalError("curl_easy_init: out of memory") }
        return handle
    }

    private func give(_ handle: UnsafeMutableRawPointer) {
        let kept = idle.withLock { handles in
            guard handles.count < keepIdle else { return false }
            handles.append(UInt(bitPattern: Int(bitPattern: handle)))
            return true
        }
        if !kept { curl_easy_cleanup(handle) }
    }

    /// Sends `transfer` and waits for the whole answer, blocking the calling thread.
    /// `progress`, when given, is called on this thread with the body bytes sent so far, many
    /// times a second while bytes move and about once a second otherwise, and once at the end;
    /// returning false aborts the request (`CurlError.isAborted`).
    public func perform(_ transfer: CurlTransfer, progress: ((Int64) -> Bool)? = nil) throws(CurlError) -> CurlResponse {
        let handle = take()
        defer { give(handle) }
        let state = TransferState(body: transfer.body, progress: progress)
        var headers: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headers) }
        let code: CURLcode = withExtendedLifetime(state) {
            curl_easy_reset(handle)
            headers = configure(handle, transfer, state)
            let code = curl_easy_perform(handle)
            // The list is freed on return: libcurl must not keep a pointer to it.
            rehost_curl_setopt_pointer(handle, CURLOPT_HTTPHEADER, nil)
            return code
        }
        var sent: curl_off_t = 0
        rehost_curl_getinfo_off(handle, CURLINFO_SIZE_UPLOAD_T, &sent)
        _ = progress?(Int64(sent))
        guard code == CURLE_OK else {
            let detail = String(cString: state.errorBuffer.baseAddress!)
            let message = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
            throw CurlError(code: Int(code.rawValue),
                            message: message.split(whereSeparator: \.isNewline).joined(separator: " "))
        }
        var status = 0
        rehost_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return CurlResponse(status: status, headers: state.responseHeaders, body: state.responseBody, bytesSent: Int64(sent))
    }

    /// Every option of one request, on a freshly reset handle. Returns the header list to free.
    private func configure(_ handle: UnsafeMutableRawPointer, _ transfer: CurlTransfer,
                           _ state: TransferState) -> UnsafeMutablePointer<curl_slist>? {
        let context = Unmanaged.passUnretained(state).toOpaque()
        rehost_curl_setopt_pointer(handle, CURLOPT_URL, transfer.url)
        rehost_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        rehost_curl_setopt_long(handle, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_1_1))
        rehost_curl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0)
        rehost_curl_setopt_long(handle, CURLOPT_TCP_KEEPALIVE, 1)
        rehost_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Int(max(1, transfer.connectTimeout) * 1000))
        rehost_curl_setopt_long(handle, CURLOPT_LOW_SPEED_LIMIT, 1)
        rehost_curl_setopt_long(handle, CURLOPT_LOW_SPEED_TIME, Int(max(1, transfer.idleTimeout.rounded(.up))))
        // Large buffers: libcurl moves the body in pieces of the upload buffer's size.
        rehost_curl_setopt_long(handle, CURLOPT_UPLOAD_BUFFERSIZE, 1 << 20)
        rehost_curl_setopt_long(handle, CURLOPT_BUFFERSIZE, 512 << 10)
        rehost_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, state.errorBuffer.baseAddress)

        rehost_curl_setopt_data_callback(handle, CURLOPT_WRITEFUNCTION, { buffer, size, count, context in
            let state = Unmanaged<TransferState>.fromOpaque(context!).takeUnretainedValue()
            let length = size * count
            if length > 0, let buffer { state.responseBody.append(UnsafeRawPointer(buffer).assumingMemoryBound(to: UInt8.self), count: length) }
            return length
        })
        rehost_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, context)
        rehost_curl_setopt_data_callback(handle, CURLOPT_HEADERFUNCTION, { buffer, size, count, context in
            let state = Unmanaged<TransferState>.fromOpaque(context!).takeUnretainedValue()
            let length = size * count
            if length > 0, let buffer {
                state.header(UnsafeRawBufferPointer(start: buffer, count: length))
            }
            return length
        })
        rehost_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, context)
        if state.progress != nil {
            rehost_curl_setopt_long(handle, CURLOPT_NOPROGRESS, 0)
            rehost_curl_setopt_xferinfo(handle, { context, _, _, _, uploaded in
                let state = Unmanaged<TransferState>.fromOpaque(context!).takeUnretainedValue()
                return state.progress?(Int64(uploaded)) == false ? 1 : 0
            })
            rehost_curl_setopt_pointer(handle, CURLOPT_XFERINFODATA, context)
        }

        let length: Int64? = switch transfer.body {
        case .none: 0
        case let .bytes(data): Int64(data.count)
        case let .file(_, length): length
        case .stream: nil
        }
        let hasBody: Bool = if case .none = transfer.body { false } else { true }
        if hasBody {
            rehost_curl_setopt_data_callback(handle, CURLOPT_READFUNCTION, { buffer, size, count, context in
                let state = Unmanaged<TransferState>.fromOpaque(context!).takeUnretainedValue()
                return state.read(UnsafeMutableRawBufferPointer(start: buffer, count: size * count))
            })
            rehost_curl_setopt_pointer(handle, CURLOPT_READDATA, context)
            rehost_curl_setopt_seek(handle, { context, offset, origin in
                let state = Unmanaged<TransferState>.fromOpaque(context!).takeUnretainedValue()
                return state.seek(to: Int64(offset), origin: origin)
            })
            rehost_curl_setopt_pointer(handle, CURLOPT_SEEKDATA, context)
        }
        var headerNames = Set<String>()
        var list: UnsafeMutablePointer<curl_slist>?
        for (name, value) in transfer.headers {
            headerNames.insert(name.lowercased())
            // "Name;" sends a header with an empty value; "Name:" would remove it.
            list = curl_slist_append(list, value.isEmpty ? "\(name);" : "\(name): \(value)")
        }
        // libcurl's own: no "Expect: 100-continue" (a round trip per body), no form-urlencoded
        // label the request did not ask for, and chunked framing for a body of unknown length.
        if !headerNames.contains("expect") { list = curl_slist_append(list, "Expect:") }
        if !headerNames.contains("content-type") { list = curl_slist_append(list, "Content-Type:") }
        if length == nil, !headerNames.contains("transfer-encoding") {
            list = curl_slist_append(list, "Transfer-Encoding: chunked")
        }
        rehost_curl_setopt_pointer(handle, CURLOPT_HTTPHEADER, list)

        switch transfer.method.uppercased() {
        case "GET" where !hasBody:
            rehost_curl_setopt_long(handle, CURLOPT_HTTPGET, 1)
        case "HEAD":
            rehost_curl_setopt_long(handle, CURLOPT_NOBODY, 1)
        case "POST":
            rehost_curl_setopt_long(handle, CURLOPT_POST, 1)
            rehost_curl_setopt_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(length ?? -1))
            if !hasBody { rehost_curl_setopt_pointer(handle, CURLOPT_POSTFIELDS, "") }
        case "PUT":
            rehost_curl_setopt_long(handle, CURLOPT_UPLOAD, 1)
            rehost_curl_setopt_off(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(length ?? -1))
        case let method:
            if hasBody {
                rehost_curl_setopt_long(handle, CURLOPT_UPLOAD, 1)
                rehost_curl_setopt_off(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(length ?? -1))
            }
            rehost_curl_setopt_pointer(handle, CURLOPT_CUSTOMREQUEST, method)
        }
        return list
    }
}

/// What the callbacks of one request share; used only by the thread in `perform`.
private final class TransferState {
    let body: CurlTransfer.Body
    let progress: ((Int64) -> Bool)?
    /// CURLOPT_ERRORBUFFER: libcurl's message for the failure, when it has one.
    let errorBuffer = UnsafeMutableBufferPointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
    var offset: Int64 = 0
    var responseBody = Data()
    var responseHeaders: [String: String] = [:]

    init(body: CurlTransfer.Body, progress: ((Int64) -> Bool)?) {
        self.body = body
        self.progress = progress
        errorBuffer.initialize(repeating: 0)
    }

    deinit { errorBuffer.deallocate() }

    func read(_ buffer: UnsafeMutableRawBufferPointer) -> Int {
        switch body {
        case .none:
            return 0
        case let .bytes(data):
            let count = min(buffer.count, data.count - Int(offset))
            guard count > 0 else { return 0 }
            data.withUnsafeBytes { source in
                buffer.baseAddress!.copyMemory(from: source.baseAddress! + Int(offset), byteCount: count)
            }
            offset += Int64(count)
            return count
        case let .file(descriptor, length):
            let wanted = Int(min(Int64(buffer.count), length - offset))
            guard wanted > 0 else { return 0 }
            while true {
                let count = pread(descriptor, buffer.baseAddress, wanted, off_t(offset))
                if count < 0, errno == EINTR { continue }
                // A file that shrank under us cannot give the promised length: abort.
                guard count > 0 else { return rehost_curl_readfunc_abort() }
                offset += Int64(count)
                return count
            }
        case let .stream(read):
            guard let count = read(buffer) else { return rehost_curl_readfunc_abort() }
            offset += Int64(count)
            return count
        }
    }

    func seek(to position: Int64, origin: Int32) -> Int32 {
        guard origin == SEEK_SET else { return rehost_curl_seekfunc_cantseek() }
        switch body {
        case .none, .bytes, .file:
            offset = position
            return rehost_curl_seekfunc_ok()
        case .stream:
            return position == offset ? rehost_curl_seekfunc_ok() : rehost_curl_seekfunc_cantseek()
        }
    }

    /// One header line as libcurl hands it over: a status line starts a new set (after a
    /// 100 Continue or an interim answer), the blank line ends it.
    func header(_ line: UnsafeRawBufferPointer) {
        let text = String(decoding: line, as: UTF8.self)
        if text.hasPrefix("HTTP/") {
            responseHeaders = [:]
            return
        }
        guard let colon = text.firstIndex(of: ":") else { return }
        let name = text[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
        let value = text[text.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty else { return }
        if let earlier = responseHeaders[name] {
            responseHeaders[name] = earlier + ", " + value
        } else {
            responseHeaders[name] = value
        }
    }
}
