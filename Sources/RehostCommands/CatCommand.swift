import ArgumentParser
import ImageCore
import Pipeline

struct CatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cat",
        abstract: "Write a file of the guest inside an image to standard output.",
        discussion: """
            Reads one regular file out of the image, without root, mount or loop device, and writes its \
            bytes to standard output (holes as zeros). Symlinks are followed inside the guest: an absolute \
            target starts at the guest's root, never the host's, and ".." stops at the guest's root. The \
            guest's fstab mounts are in place (a separate /boot, LVM2 volumes), so /boot/grub/grub.conf is \
            read from the /boot partition. Any input format works: raw, gzip, qcow2, VMDK, VDI, VHD, OVA.

            Examples:
              rehost cat centos5.img /etc/fstab
              rehost cat vm.qcow2 /var/log/bootstrap/report.json > report.json
              rehost cat disk.raw --partition 1 /grub/grub.conf
            """)

    @Argument(help: ArgumentHelp("The image: a bare ext2/3/4 filesystem or a partitioned disk; raw, gzip, qcow2, VMDK, VDI, VHD or OVA.", valueName: "disk"))
    var disk: String

    @Argument(help: ArgumentHelp("The file, an absolute path inside the guest.", valueName: "path"))
    var path: String

    @OptionGroup(title: "Input") var input: FileAccessOptions

    func run() throws {
        try runReportingErrors {
            let tree = try input.openTree(disk)
            let node = try tree.resolve(path, followLast: true)
            let zeros = [UInt8](repeating: 0, count: 1 << 16)
            var position: UInt64 = 0
            func fill(to offset: UInt64) throws {
                while position < offset {
                    let count = Int(min(UInt64(zeros.count), offset - position))
                    try zeros.withUnsafeBytes { try StandardOutput.write(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                    position += UInt64(count)
                }
            }
            let size = try tree.readData(node) { data, offset in
                try fill(to: offset)
                try StandardOutput.write(data)
                position = offset + UInt64(data.count)
            }
            try fill(to: size)
        }
    }
}
