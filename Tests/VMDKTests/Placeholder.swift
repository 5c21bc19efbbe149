import Testing

@Test func placeholderVMDKTests() {}
