import Testing

@Test func placeholderImageCoreTests() {}
