import ImageCore

/// The OVF 1.0 descriptor (DMTF DSP0243 1.0.0) of a one-disk virtual machine.
///
/// ```
/// Envelope (ovf, rasd, vssd, vmw, vbox namespaces)
///   References/File            href = the disk member, size = its exact byte count
///   DiskSection/Disk           capacity = the virtual size in bytes, format = streamOptimized VMDK
///   NetworkSection/Network     one network
///   VirtualSystem
///     OperatingSystemSection   CIM OS id (+ vmw:osType or vbox:OSType)
///     VirtualHardwareSection
///       System                 vssd:VirtualSystemType vmx-NN | virtualbox-2.2
///       Item 1 CPU (3), 2 memory (4, MB), 3 controller (6 lsilogic|buslogic|lsilogicsas, or 5 IDE),
///       Item 4 disk (17, Parent 3), 5 E1000 NIC (10)
///       vmw:Config             extra VMware settings, ovf:required="false" (VMware profile only)
///     vbox:Machine             VirtualBox profile with EFI firmware only: the machine in VirtualBox's
///                              own settings format, ovf:required="false", because plain OVF has no
///                              firmware setting VirtualBox reads
/// ```
/// Inside each Item the rasd elements follow the CIM schema's sequence, which is alphabetical;
/// VMware's ovftool validates that order.
///
/// Everything except the disk file's size is known when the writer starts, so the descriptor is
/// rendered once with the widest possible size (20 digits) to size its reservation in the
/// archive, and again at the end with the real size, padded with trailing spaces (XML allows
/// white space after the root element) to exactly the reserved length.
struct OVFDescriptor {
    static let envelopeNamespace = "http://schemas.dmtf.org/ovf/envelope/1"
    static let rasdNamespace = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
    static let vssdNamespace = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
    static let vmwareNamespace = "http://www.vmware.com/schema/ovf"
    static let virtualBoxNamespace = "http://www.virtualbox.org/ovf/machine"
    static let streamOptimizedFormat = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
    /// ESX 4's virtual hardware: the oldest family current ESXi and Workstation still deploy
    /// without a warning, and new enough for lsilogic and E1000.
    static let minimumVMwareHardware = 7

    var vmName: String
    var diskFileName: String
    var virtualSize: UInt64
    var profile: WriterOptions.OVAProfile
    var hardwareVersion: Int
    var cpus: Int
    var memoryMiB: Int
    var adapter: WriterOptions.VMDKAdapter
    var guest: GuestOperatingSystem
    var firmware: WriterOptions.Firmware
    /// The disk's `vbox:uuid` and the machine's UUID in the `vbox:Machine` section. VirtualBox
    /// gives the imported disk and machine UUIDs of their own; these only tie the section's disk
    /// attachment to the DiskSection's disk (by exact, lower-case text).
    let virtualBoxDiskUUID = UUIDBytes.format(UUIDBytes.random(for: "ovf vbox disk uuid")).lowercased()
    let virtualBoxMachineUUID = UUIDBytes.format(UUIDBytes.random(for: "ovf vbox machine uuid")).lowercased()
    var writesVirtualBoxMachine: Bool { profile == .virtualbox && firmware == .efi }

    init(diskFileName: String, virtualSize: UInt64, options: WriterOptions) {
        vmName = options.vmName
        self.diskFileName = diskFileName
        self.virtualSize = virtualSize
        profile = options.ovaProfile
        hardwareVersion = max(OVFDescriptor.minimumVMwareHardware, options.vmdkHardwareVersion)
        cpus = max(1, options.cpus)
        memoryMiB = max(4, options.memoryMiB)
        adapter = options.vmdkAdapter
        guest = GuestOperatingSystem(options.guestOS)
        firmware = options.firmware
    }

    /// "vmx-07", "vmx-13" or "virtualbox-2.2".
    var systemType: String {
        switch profile {
        case .vmware: return hardwareVersion < 10 ? "vmx-0\(hardwareVersion)" : "vmx-\(hardwareVersion)"
        case .virtualbox: return "virtualbox-2.2"
        }
    }

    /// The descriptor's bytes with the widest disk size there can be: the space to reserve.
    var reservedLength: Int { render(diskFileSize: nil).utf8.count }

    /// The descriptor for a disk member of `diskFileSize` bytes, padded with trailing spaces and a
    /// newline to exactly `reservedLength` bytes.
    func bytes(diskFileSize: UInt64) -> [UInt8] {
        var text = Array(render(diskFileSize: diskFileSize).utf8)
        let reserved = reservedLength
        precondition(text.count <= reserved, "a size never has more digits than UInt64.max")
        text.removeLast()  // the final newline goes after the padding
        text += [UInt8](repeating: UInt8(ascii: " "), count: reserved - text.count - 1) + [UInt8(ascii: "\n")]
        return text
    }

    /// The XML; `diskFileSize` nil renders the widest size (UInt64.max) for sizing the reservation.
    func render(diskFileSize: UInt64?) -> String {
        let name = vmName.escapedForMarkup
        let vboxDisk = writesVirtualBoxMachine ? " vbox:uuid=\"\(virtualBoxDiskUUID)\"" : ""
        let fileSize = diskFileSize.map(String.init) ?? String(UInt64.max)
        let network = profile == .virtualbox ? "NAT" : "VM Network"
        var x = """
        <?xml version="1.0" encoding="UTF-8"?>
        <!--Generated by rehost-->
        <Envelope xmlns="\(Self.envelopeNamespace)" \
        xmlns:ovf="\(Self.envelopeNamespace)" \
        xmlns:rasd="\(Self.rasdNamespace)" \
        xmlns:vssd="\(Self.vssdNamespace)" \
        xmlns:vmw="\(Self.vmwareNamespace)" \
        xmlns:vbox="\(Self.virtualBoxNamespace)" \
        xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
          <References>
            <File ovf:href="\(diskFileName.escapedForMarkup)" ovf:id="file1" ovf:size="\(fileSize)"/>
          </References>
          <DiskSection>
            <Info>Virtual disk information</Info>
            <Disk ovf:capacity="\(virtualSize)" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" \
        ovf:fileRef="file1" ovf:format="\(Self.streamOptimizedFormat)"\(vboxDisk)/>
          </DiskSection>
          <NetworkSection>
            <Info>The list of logical networks</Info>
            <Network ovf:name="\(network)">
              <Description>The \(network) network</Description>
            </Network>
          </NetworkSection>
          <VirtualSystem ovf:id="\(name)">
            <Info>A virtual machine</Info>
            <Name>\(name)</Name>

        """
        x += operatingSystemSection()
        x += """
            <VirtualHardwareSection>
              <Info>Virtual hardware requirements</Info>
              <System>
                <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
                <vssd:InstanceID>0</vssd:InstanceID>
                <vssd:VirtualSystemIdentifier>\(name)</vssd:VirtualSystemIdentifier>
                <vssd:VirtualSystemType>\(systemType)</vssd:VirtualSystemType>
              </System>
              <Item>
                <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
                <rasd:Description>Number of Virtual CPUs</rasd:Description>
                <rasd:ElementName>\(cpus) virtual CPU(s)</rasd:ElementName>
                <rasd:InstanceID>1</rasd:InstanceID>
                <rasd:ResourceType>3</rasd:ResourceType>
                <rasd:VirtualQuantity>\(cpus)</rasd:VirtualQuantity>
              </Item>
              <Item>
                <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
                <rasd:Description>Memory Size</rasd:Description>
                <rasd:ElementName>\(memoryMiB)MB of memory</rasd:ElementName>
                <rasd:InstanceID>2</rasd:InstanceID>
                <rasd:ResourceType>4</rasd:ResourceType>
                <rasd:VirtualQuantity>\(memoryMiB)</rasd:VirtualQuantity>
              </Item>

        """
        x += controllerItem()
        x += """
              <Item>
                <rasd:AddressOnParent>0</rasd:AddressOnParent>
                <rasd:ElementName>Hard Disk 1</rasd:ElementName>
                <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
                <rasd:InstanceID>4</rasd:InstanceID>
                <rasd:Parent>3</rasd:Parent>
                <rasd:ResourceType>17</rasd:ResourceType>
              </Item>
              <Item>
                <rasd:AddressOnParent>7</rasd:AddressOnParent>
                <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
                <rasd:Connection>\(network)</rasd:Connection>
                <rasd:Description>E1000 ethernet adapter on &quot;\(network)&quot;</rasd:Description>
                <rasd:ElementName>Network adapter 1</rasd:ElementName>
                <rasd:InstanceID>5</rasd:InstanceID>
                <rasd:ResourceSubType>E1000</rasd:ResourceSubType>
                <rasd:ResourceType>10</rasd:ResourceType>
              </Item>

        """
        if profile == .vmware {
            // Settings VMware applies when it can and ignores otherwise (ovf:required="false").
            // A disk that boots through UEFI only needs the machine to say so: VMware's default is BIOS.
            let firmware = self.firmware == .efi ? [("firmware", "efi")] : []
            for (key, value) in [("tools.syncTimeWithHost", "false"), ("powerOpInfo.powerOffType", "soft"),
                                 ("powerOpInfo.resetType", "soft")] + firmware {
                x += "      <vmw:Config ovf:required=\"false\" vmw:key=\"\(key)\" vmw:value=\"\(value)\"/>\n"
            }
        }
        x += "    </VirtualHardwareSection>\n"
        if writesVirtualBoxMachine { x += virtualBoxMachine() }
        x += """
          </VirtualSystem>
        </Envelope>

        """
        return x
    }

    /// VirtualBox reads the firmware only from its own machine settings (Hardware/Firmware),
    /// which an OVF carries as `vbox:Machine`. When the section is there, VirtualBox takes the
    /// CPUs, memory and network adapters from it, and attaches each disk its attachments name by
    /// `vbox:uuid` (a disk it does not name fails the import), so all of them are written, to
    /// match the VirtualHardwareSection. Settings version 1.16 keeps the controllers directly
    /// under Machine.
    private func virtualBoxMachine() -> String {
        let (controllerName, controllerType, ports): (String, String, Int)
        switch adapter {
        case .ide: (controllerName, controllerType, ports) = ("IDE", "PIIX4", 2)
        case .lsilogic: (controllerName, controllerType, ports) = ("SCSI", "LsiLogic", 16)
        case .buslogic: (controllerName, controllerType, ports) = ("SCSI", "BusLogic", 16)
        case .lsisas1068: (controllerName, controllerType, ports) = ("SAS", "LsiLogicSas", 8)
        }
        return """
            <vbox:Machine ovf:required="false" version="1.16-linux" uuid="{\(virtualBoxMachineUUID)}" \
        name="\(vmName.escapedForMarkup)" OSType="\(guest.virtualBoxType.escapedForMarkup)">
              <ovf:Info>The machine in VirtualBox's own settings format, for its EFI firmware</ovf:Info>
              <Hardware>
                <CPU count="\(cpus)"/>
                <Memory RAMSize="\(memoryMiB)"/>
                <Firmware type="EFI"/>
                <Network>
                  <Adapter slot="0" enabled="true" type="82540EM">
                    <NAT/>
                  </Adapter>
                </Network>
              </Hardware>
              <StorageControllers>
                <StorageController name="\(controllerName)" type="\(controllerType)" PortCount="\(ports)">
                  <AttachedDevice type="HardDisk" port="0" device="0">
                    <Image uuid="{\(virtualBoxDiskUUID)}"/>
                  </AttachedDevice>
                </StorageController>
              </StorageControllers>
            </vbox:Machine>

        """
    }

    private func operatingSystemSection() -> String {
        switch profile {
        case .vmware:
            return """
                <OperatingSystemSection ovf:id="\(guest.cimID)" vmw:osType="\(guest.vmwareType.escapedForMarkup)">
                  <Info>The kind of installed guest operating system</Info>
                </OperatingSystemSection>

            """
        case .virtualbox:
            return """
                <OperatingSystemSection ovf:id="\(guest.cimID)">
                  <Info>The kind of installed guest operating system</Info>
                  <Description>\(guest.virtualBoxType.escapedForMarkup)</Description>
                  <vbox:OSType ovf:required="false">\(guest.virtualBoxType.escapedForMarkup)</vbox:OSType>
                </OperatingSystemSection>

            """
        }
    }

    /// Item 3: the controller the disk hangs off, as `options.vmdkAdapter` says.
    private func controllerItem() -> String {
        let (description, subType, resourceType): (String, String, Int)
        switch adapter {
        case .ide: (description, subType, resourceType) = ("IDE Controller", "PIIX4", 5)
        case .lsilogic: (description, subType, resourceType) = ("SCSI Controller", "lsilogic", 6)
        case .buslogic: (description, subType, resourceType) = ("SCSI Controller", "buslogic", 6)
        case .lsisas1068: (description, subType, resourceType) = ("SCSI Controller", "lsilogicsas", 6)
        }
        return """
              <Item>
                <rasd:Address>0</rasd:Address>
                <rasd:Description>\(description)</rasd:Description>
                <rasd:ElementName>\(description) 0</rasd:ElementName>
                <rasd:InstanceID>3</rasd:InstanceID>
                <rasd:ResourceSubType>\(subType)</rasd:ResourceSubType>
                <rasd:ResourceType>\(resourceType)</rasd:ResourceType>
              </Item>

        """
    }
}

/// The guest OS as OVF (a CIM_OperatingSystem OsType number), VMware (guestOS id) and
/// VirtualBox (OS type id) name it. From `options.guestOS` in either vendor's spelling, or a
/// 64-bit Linux by default.
struct GuestOperatingSystem: Equatable {
    var cimID: Int
    var vmwareType: String
    var virtualBoxType: String

    /// CIM OsType values from the DMTF CIM_OperatingSystem schema, keyed by a family and
    /// whether the guest is 64-bit.
    private static let families: [(keys: [String], cim32: Int, cim64: Int, vmware: String, vbox: String)] = [
        (["rhel", "redhat"], 79, 80, "rhel5", "RedHat"),
        (["centos"], 106, 107, "centos", "RedHat"),
        (["oracle"], 108, 109, "oracleLinux", "Oracle"),
        (["sles"], 84, 85, "sles11", "OpenSUSE"),
        (["suse"], 82, 83, "sles11", "OpenSUSE"),
        (["ubuntu"], 93, 94, "ubuntu", "Ubuntu"),
        (["debian"], 95, 96, "debian6", "Debian"),
    ]

    init(_ requested: String?) {
        guard let requested, !requested.isEmpty else {
            self.init(cimID: 101, vmwareType: "otherLinux64Guest", virtualBoxType: "Linux26_64")
            return
        }
        let lower = requested.lowercased()
        let is64 = lower.contains("64")
        var cim = is64 ? 101 : 36
        var vmware = is64 ? "otherLinux64Guest" : "otherLinuxGuest"
        var vbox = is64 ? "Linux26_64" : "Linux26"
        if let family = Self.families.first(where: { family in family.keys.contains { lower.contains($0) } }) {
            cim = is64 ? family.cim64 : family.cim32
            vmware = family.vmware + (is64 ? "_64Guest" : "Guest")
            if family.vmware == "centos" || family.vmware == "ubuntu" { vmware = family.vmware + (is64 ? "64Guest" : "Guest") }
            vbox = family.vbox + (is64 ? "_64" : "")
        }
        // The user's own spelling wins for the vendor it belongs to (VMware's ids end in "Guest").
        if requested.hasSuffix("Guest") { vmware = requested } else { vbox = requested }
        self.init(cimID: cim, vmwareType: vmware, virtualBoxType: vbox)
    }

    init(cimID: Int, vmwareType: String, virtualBoxType: String) {
        self.cimID = cimID
        self.vmwareType = vmwareType
        self.virtualBoxType = virtualBoxType
    }
}
