import Testing

@Test func placeholderQCOW2Tests() {}
