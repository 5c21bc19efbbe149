import Blkid
import Testing
@testable import Volumes

@Suite struct FstabMountsTests {
    @Test func parsesEntries() {
        let entries = FstabEntry.parse("""
            # comment
            /dev/VolGroup00/LogVol00 / ext3 defaults 1 1
              LABEL=/boot\t/boot/\text3 defaults 1 2
            /dev/sda3 /srv/my\\040data ext3 defaults
            broken-line
            """)
        #expect(entries == [
            FstabEntry(device: "/dev/VolGroup00/LogVol00", mountPoint: "/", type: "ext3", line: 2),
            FstabEntry(device: "LABEL=/boot", mountPoint: "/boot", type: "ext3", line: 3),
            FstabEntry(device: "/dev/sda3", mountPoint: "/srv/my data", type: "ext3", line: 4),
        ])
    }

    @Test func namesOfPartitions() {
        #expect(GuestVolumes.partitionNumber("/dev/sda2") == 2)
        #expect(GuestVolumes.partitionNumber("/dev/hda1") == 1)
        #expect(GuestVolumes.partitionNumber("/dev/xvda12") == 12)
        #expect(GuestVolumes.partitionNumber("/dev/xvde1") == 1)
        #expect(GuestVolumes.partitionNumber("/dev/vda3") == 3)
        #expect(GuestVolumes.partitionNumber("/dev/sda") == nil)
        #expect(GuestVolumes.partitionNumber("/dev/sda0") == nil)
        #expect(GuestVolumes.partitionNumber("/dev/md0") == nil)
        #expect(GuestVolumes.mapperName(group: "vg-data", volume: "lv_root") == "vg--data-lv_root")
    }

    @Test func devicesResolveToVolumes() {
        let disk = MemoryDisk([UInt8](repeating: 0, count: 4096))
        func probe(_ label: String, _ uuid: String) -> FilesystemProbe {
            FilesystemProbe(type: "ext3", label: label, uuid: uuid, version: nil, usage: "filesystem")
        }
        let volumes = GuestVolumes(volumes: [
            GuestVolume(kind: .partition(disk: 0, number: 1), disk: disk, probe: probe("/boot", "6c0f1c2a-aaaa"), location: ("d", 1 << 20)),
            GuestVolume(kind: .logicalVolume(group: "vg-data", volume: "root"), disk: disk, probe: probe("", "0e5b"), location: nil),
        ], groups: [], unreadable: [("vg-data/home", "its physical volume pv1 is missing")])
        #expect(volumes.volume(named: "LABEL=/boot")?.name == "partition 1")
        #expect(volumes.volume(named: "UUID=6C0F1C2A-AAAA")?.name == "partition 1")
        #expect(volumes.volume(named: "/dev/xvda1")?.name == "partition 1")
        #expect(volumes.volume(named: "/dev/vg-data/root")?.name == "vg-data/root")
        #expect(volumes.volume(named: "/dev/mapper/vg--data-root")?.name == "vg-data/root")
        #expect(volumes.volume(named: "/dev/mapper/vg-data-root") == nil)
        #expect(volumes.volume(named: "/dev/sda2") == nil)
        #expect(volumes.volume(named: "LABEL=/home") == nil)
        #expect(volumes.unreadableVolume(named: "/dev/vg-data/home")?.name == "vg-data/home")
        #expect(volumes.unreadableVolume(named: "/dev/mapper/vg--data-home")?.name == "vg-data/home")
        #expect(volumes.unreadableVolume(named: "/dev/vg-data/root") == nil)
    }
}
