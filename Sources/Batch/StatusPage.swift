import ImageCore
import Foundation

/// `rehost batch status --html`: one static page for the people who watch a migration. No
/// scripts, no outside resources: it opens from a file share or an artifact store as it is.
public enum StatusPage {
    public static func render(_ status: BatchStatus, generated: Date = Date()) -> String {
        let formatter = ISO8601DateFormatter()
        var html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <title>rehost batch: \(escape((status.manifest as NSString).lastPathComponent))</title>
            <style>
            body{font-family:system-ui,sans-serif;margin:2em;color:#222}
            table{border-collapse:collapse;margin:1em 0}td,th{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:left}
            td.n{text-align:right;font-variant-numeric:tabular-nums}
            .done{color:#176b2c}.failed{color:#a4161a}.retry{color:#b35c00}.running{color:#1d4e89}.todo{color:#555}
            .bar{display:flex;height:1.2em;width:40em;max-width:100%;border:1px solid #ccc}
            .bar span{display:block;height:100%}
            </style></head><body>
            <h1>rehost batch: \(escape(status.manifest))</h1>
            <p>Records in <code>\(escape(status.results))</code>; this page was written \(formatter.string(from: generated)).</p>

            """
        let colours = ["done": "#2e9e4f", "failed": "#d0312d", "retry": "#f08c00", "running": "#3b7dd8", "todo": "#bbb"]
        html += "<div class=\"bar\" title=\"done, failed, retry, running, to do\">"
        for state in ["done", "failed", "retry", "running", "todo"] {
            let count = status.counts[state] ?? 0
            guard count > 0, status.total > 0 else { continue }
            html += "<span style=\"width:\(Double(count) * 100 / Double(status.total))%;background:\(colours[state]!)\"></span>"
        }
        html += "</div>\n<table><tr><th>state</th><th>entries</th></tr>\n"
        for state in ["done", "failed", "retry", "running", "todo"] {
            html += "<tr><td class=\"\(state)\">\(state == "todo" ? "to do" : state)</td><td class=\"n\">\(status.counts[state] ?? 0)</td></tr>\n"
        }
        html += "<tr><th>total</th><th class=\"n\">\(status.total)</th></tr></table>\n"
        if let throughput = status.throughput {
            html += "<h2>Throughput</h2><p>\(throughput.images) images, \(gib(throughput.inputBytes)) GiB of input in \(String(format: "%.1f", throughput.wallSeconds)) s: "
                + "<b>\(throughput.imagesPerMinute) images/min</b>, <b>\(throughput.gibPerMinute) GiB/min</b>.</p>\n"
        }
        if !status.toDo.isEmpty {
            html += "<p>To do: <code>\(escape(status.toDo))</code> (<code>sbatch --array=\(escape(status.toDo))</code>)</p>\n"
        }
        if !status.failures.isEmpty {
            html += "<h2>Failures by cause</h2><table><tr><th>cause</th><th>entries</th><th>retry</th><th>indices</th><th>examples</th></tr>\n"
            for group in status.failures {
                html += "<tr><td title=\"\(escape(group.explanation))\">\(escape(group.cause))</td><td class=\"n\">\(group.ids.count)</td>"
                    + "<td>\(group.retryable ? "yes" : "no")</td><td><code>\(escape(group.indices))</code></td>"
                    + "<td>\(group.examples.map(escape).joined(separator: "<br>"))</td></tr>\n"
            }
            html += "</table>\n"
        }
        html += "<h2>Images</h2><table><tr><th>index</th><th>id</th><th>state</th><th>seconds</th><th>input GiB</th><th>output GiB</th><th>attempt</th><th>finished</th><th>note</th></tr>\n"
        let slowest = status.entries.compactMap(\.seconds).max() ?? 0
        for entry in status.entries {
            let seconds = entry.seconds.map { s in
                "\(String(format: "%.1f", s)) <span style=\"display:inline-block;height:.6em;width:\(slowest > 0 ? Int(s / slowest * 80) : 0)px;background:#3b7dd8\"></span>"
            } ?? ""
            let note = entry.error.map { "[\(entry.cause ?? "failed")] \($0)" } ?? entry.reason ?? ""
            html += "<tr><td class=\"n\">\(entry.index)</td><td>\(escape(entry.id))</td><td class=\"\(entry.state.rawValue)\">\(entry.state == .todo ? "to do" : entry.state.rawValue)</td>"
                + "<td class=\"n\">\(seconds)</td><td class=\"n\">\(gib(entry.inputBytes))</td><td class=\"n\">\(entry.outputBytes.map(gib) ?? "")</td>"
                + "<td class=\"n\">\(entry.attempt.map(String.init) ?? "")</td><td>\(escape(entry.finished ?? ""))</td><td>\(escape(note))</td></tr>\n"
        }
        html += "</table>\n</body></html>\n"
        return html
    }

    static func gib(_ bytes: UInt64) -> String { String(format: "%.2f", Double(bytes) / Double(1 << 30)) }

    /// Text from records and manifests (ids, error messages that may quote an image) as HTML text.
    static func escape(_ text: String) -> String { text.escapedForMarkup }
}
