@testable import Cloud
import Foundation
import Testing

/// AWS's three error shapes become the (code, message) of a one-line CloudError.
struct AWSErrorParserTests {
    func response(_ status: Int, _ body: String, headers: [String: String] = [:]) -> HTTPResponse {
        HTTPResponse(status: status, headers: headers, body: Data(body.utf8))
    }

    @Test func s3Error() {
        let parsed = AWSErrorParser.parse(response(403, """
            <?xml version="1.0" encoding="UTF-8"?>
            <Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match
            the signature you provided.</Message><RequestId>1</RequestId></Error>
            """))
        #expect(parsed.code == "SignatureDoesNotMatch")
        #expect(parsed.message == "The request signature we calculated does not match the signature you provided.")
    }

    @Test func ec2Error() {
        let parsed = AWSErrorParser.parse(response(400, """
            <?xml version="1.0" encoding="UTF-8"?>
            <Response><Errors><Error><Code>InvalidAMIID.NotFound</Code><Message>The image id '[ami-1]' does not exist</Message></Error></Errors><RequestID>x</RequestID></Response>
            """))
        #expect(parsed.code == "InvalidAMIID.NotFound")
        #expect(parsed.message == "The image id '[ami-1]' does not exist")
        let error = CloudError.http(service: "ec2", operation: "describe images", status: 400, code: parsed.code, message: parsed.message)
        #expect("\(error)" == "ec2 describe images: HTTP 400 InvalidAMIID.NotFound: The image id '[ami-1]' does not exist")
    }

    @Test func jsonErrors() {
        let typed = AWSErrorParser.parse(response(400, #"{"__type":"com.amazon.coral.validate#ValidationException","message":"bad block"}"#))
        #expect(typed.code == "ValidationException" && typed.message == "bad block")
        let header = AWSErrorParser.parse(response(403, #"{"Message":"no"}"#,
                                                   headers: ["x-amzn-errortype": "AccessDeniedException:http://internal.amazon.com/"]))
        #expect(header.code == "AccessDeniedException" && header.message == "no")
    }

    @Test func bodilessAndHTMLAnswers() {
        #expect(AWSErrorParser.parse(response(404, "")).message == "")
        #expect(AWSErrorParser.parse(response(500, "<!DOCTYPE html><html><body>oops</body></html>")).code == nil)
        #expect(AWSErrorParser.parse(response(502, "bad gateway\nmore")).message == "bad gateway")
    }
}
