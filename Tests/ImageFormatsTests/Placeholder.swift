import Testing

@Test func placeholderImageFormatsTests() {}
