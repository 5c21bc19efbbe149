import Testing

@Test func placeholderDiskLayoutTests() {}
