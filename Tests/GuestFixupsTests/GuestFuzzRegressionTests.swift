import GuestFixups
import ImageCore
import Testing
import TestSupport

/// Files the guest fuzz targets once failed on (Fuzz/Regressions/guest-fstab/, guest-inittab/,
/// guest-grub/, guest-modprobe/; README "Fuzzing"): put in place of the same file of the
/// CentOS 5 fixture, they go through every repair without a trap, and a second run changes
/// nothing, as the targets check. (guest-etc inputs pick their file by their first byte from
/// the target's own list; add them here with that list if that target ever finds something.)
@Suite struct GuestFuzzRegressionTests {
    static let files = ["guest-fstab": "/etc/fstab", "guest-inittab": "/etc/inittab",
                        "guest-grub": "/boot/grub/grub.conf", "guest-modprobe": "/etc/modprobe.conf"]

    static var inputs: [(target: String, input: String)] {
        files.keys.sorted().flatMap { target in FuzzRegressions.inputs(target).map { (target, $0) } }
    }

    @Test(arguments: inputs)
    func secondRunChangesNothing(_ target: String, _ input: String) throws {
        let file = try RawFile(path: input, mode: .readOnly)
        let fs = GuestFixtures.centos5()
        fs.addFile(try #require(Self.files[target]), bytes: try file.read(count: Int(try file.size), at: 0))
        let options = RepairOptions(target: .kvm, rootReference: "LABEL=/", rootFilesystemType: "ext3")
        do {
            _ = try GuestRepairs.apply(to: fs, options: options)
        } catch {
            #expect(error is RehostError, "\(input): \(error)")
            return
        }
        let writes = fs.mutationCount
        #expect(try GuestRepairs.apply(to: fs, options: options).changes == [], "\(input)")
        #expect(fs.mutationCount == writes, "\(input)")
    }
}
