import Testing

@Test func placeholderCompressionTests() {}
