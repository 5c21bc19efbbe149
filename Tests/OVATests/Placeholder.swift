import Testing

@Test func placeholderOVATests() {}
