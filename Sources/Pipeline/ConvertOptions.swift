import Ext2
import FilesystemBuilder
import GuestFixups

/// Everything `rehost convert` was asked to do.
public struct ConvertOptions: Sendable {
    public var input: String
    public var output: String
    /// The whole disk's size; nil picks one from the used space.
    public var diskSize: UInt64?
    public var format = FormatOptions()
    public var target: Target = .kvm
    public var rootReference: RootReferenceChoice = .auto
    public var skip: Set<String> = []
    public var dryRun = false
    /// For a partitioned input disk: which partition holds the root filesystem.
    public var partition: Int?
    public var scratchDirectory: String?

    public init(input: String, output: String) {
        self.input = input
        self.output = output
    }
}
