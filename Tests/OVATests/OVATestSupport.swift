import Foundation
import ImageCore
@testable import ImageFormats
import TestSupport

/// Builds OVAs from synthetic disks and reads them back with independent tools.
enum OVAFixture {
    /// Streams the raw disk at `rawPath` into a new OVA at `ovaPath`, the way the pipeline does.
    @discardableResult
    static func write(raw rawPath: String, to ovaPath: String, options: WriterOptions) throws -> (OVAWriter, WriterSummary) {
        let reader = try RawDiskReader(path: rawPath)
        _ = FileManager.default.createFile(atPath: ovaPath, contents: nil)
        let file = try RawFile(path: ovaPath, mode: .readWrite)
        let writer = try OVAWriter(sink: OutputSink(file: file), virtualSize: reader.size, options: options)
        let summaries = try DiskStreamer.stream(reader, to: [writer])
        return (writer, summaries[0])
    }

    /// Runs a python3 program that prints JSON, and returns the decoded object.
    static func python(_ program: String, _ arguments: [String]) throws -> [String: Any] {
        let result = try Command.run("python3", ["-c", program] + arguments).requireSuccess()
        let object = try JSONSerialization.jsonObject(with: Data(result.stdoutBytes))
        guard let dictionary = object as? [String: Any] else {
            throw TestSupportError.commandFailed(commandLine: result.commandLine, status: 0, stderr: "not a JSON object: \(result.stdout)")
        }
        return dictionary
    }

    /// Python's tarfile view of an archive: members in order with sizes, types, data offsets and
    /// any PAX records, plus the raw magic of each member's header.
    static let tarfileProgram = #"""
    import json, sys, tarfile
    path = sys.argv[1]
    out = {"members": []}
    with tarfile.open(path, "r:") as archive, open(path, "rb") as raw:
        out["globalPax"] = len(archive.pax_headers)
        for member in archive.getmembers():
            raw.seek(member.offset + 257)
            out["members"].append({
                "name": member.name, "size": member.size, "regular": member.isreg(),
                "dataOffset": member.offset_data, "headerOffset": member.offset,
                "pax": len(member.pax_headers), "magic": raw.read(8).hex()})
    print(json.dumps(out))
    """#

    /// The facts the tests check in an OVF, read with xml.etree (which resolves namespaces).
    static let descriptorProgram = #"""
    import json, sys
    import xml.etree.ElementTree as ET
    OVF = "{http://schemas.dmtf.org/ovf/envelope/1}"
    RASD = "{http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData}"
    VSSD = "{http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData}"
    VMW = "{http://www.vmware.com/schema/ovf}"
    VBOX = "{http://www.virtualbox.org/ovf/machine}"
    root = ET.parse(sys.argv[1]).getroot()
    file = root.find(OVF + "References/" + OVF + "File")
    disk = root.find(OVF + "DiskSection/" + OVF + "Disk")
    system = root.find(OVF + "VirtualSystem")
    os = system.find(OVF + "OperatingSystemSection")
    hardware = system.find(OVF + "VirtualHardwareSection")
    items = []
    for item in hardware.findall(OVF + "Item"):
        fields = {child.tag[len(RASD):]: (child.text or "") for child in item if child.tag.startswith(RASD)}
        fields["_order"] = [child.tag[len(RASD):] for child in item]
        items.append(fields)
    out = {
        "rootTag": root.tag,
        "fileHref": file.get(OVF + "href"), "fileId": file.get(OVF + "id"), "fileSize": file.get(OVF + "size"),
        "capacity": disk.get(OVF + "capacity"), "units": disk.get(OVF + "capacityAllocationUnits"),
        "diskId": disk.get(OVF + "diskId"), "fileRef": disk.get(OVF + "fileRef"), "format": disk.get(OVF + "format"),
        "network": root.find(OVF + "NetworkSection/" + OVF + "Network").get(OVF + "name"),
        "systemId": system.get(OVF + "id"), "name": system.find(OVF + "Name").text,
        "osId": os.get(OVF + "id"), "vmwOsType": os.get(VMW + "osType"),
        "vboxOsType": (os.find(VBOX + "OSType").text if os.find(VBOX + "OSType") is not None else None),
        "systemType": hardware.find(OVF + "System/" + VSSD + "VirtualSystemType").text,
        "items": items,
        "configRequired": [c.get(OVF + "required") for c in hardware.findall(VMW + "Config")],
        "config": {c.get(VMW + "key"): c.get(VMW + "value") for c in hardware.findall(VMW + "Config")},
        "trailing": open(sys.argv[1], "rb").read().decode().split("</Envelope>")[1],
        "diskVboxUuid": disk.get(VBOX + "uuid"),
    }
    machine = system.find(VBOX + "Machine")
    if machine is not None:
        hw = machine.find(OVF + "Hardware")
        out["vboxMachine"] = {
            "required": machine.get(OVF + "required"), "version": machine.get("version"), "uuid": machine.get("uuid"),
            "name": machine.get("name"), "osType": machine.get("OSType"),
            "info": machine.find(OVF + "Info") is not None,
            "cpus": hw.find(OVF + "CPU").get("count"), "ram": hw.find(OVF + "Memory").get("RAMSize"),
            "firmware": hw.find(OVF + "Firmware").get("type"),
            "adapters": [a.get("type") for a in hw.findall(OVF + "Network/" + OVF + "Adapter")],
            "controllers": [{"name": c.get("name"), "type": c.get("type"),
                             "images": [d.find(OVF + "Image").get("uuid") for d in c.findall(OVF + "AttachedDevice")]}
                            for c in machine.findall(OVF + "StorageControllers/" + OVF + "StorageController")],
        }
    print(json.dumps(out))
    """#
}
