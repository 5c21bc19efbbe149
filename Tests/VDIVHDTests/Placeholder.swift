import Testing

@Test func placeholderVDIVHDTests() {}
