import TestSupport
import Testing
@Test func compiles() {}
