import Testing

@Test func placeholderGuestFixupsTests() {}
