import Testing

@Test func placeholderTestSupportTests() {}
