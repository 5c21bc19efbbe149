import Testing

@Test func placeholderFilesystemBuilderTests() {}
