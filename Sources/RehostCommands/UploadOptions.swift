import ArgumentParser
import Cloud
import ImageFormats

/// Where an upload goes.
enum UploadTarget: String, ExpressibleByArgument, CaseIterable, Sendable {
    case glance
    case awsEBS = "aws-ebs"
    case awsS3 = "aws-s3"
}

extension GlanceUpload.Method: ExpressibleByArgument {}

/// The options of an upload, shared by `upload`, `convert --upload` and `export --upload`.
struct UploadOptions: ParsableArguments {
    @Option(name: .customLong("image-name"),
            help: ArgumentHelp("The name the image gets in the cloud (Glance image, AMI). Default: the input's file name without its extension.",
                               valueName: "name"))
    var imageName: String?

    @Option(name: .customLong("description"), help: ArgumentHelp("A description for the snapshot and the AMI (AWS).", valueName: "text"))
    var imageDescription: String?

    // OpenStack
    @Option(name: .customLong("os-cloud"),
            help: ArgumentHelp("Glance: the cloud in clouds.yaml (./clouds.yaml, ~/.config/openstack/, /etc/openstack/, or OS_CLIENT_CONFIG_FILE; secure.yaml merged). Default: OS_CLOUD, else the OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME (or OS_APPLICATION_CREDENTIAL_ID/SECRET) environment.",
                               valueName: "name"))
    var osCloud: String?

    @Option(name: .customLong("disk-format"),
            help: ArgumentHelp("Glance: the disk_format to send: qcow2 (default for convert), raw, vmdk, vdi, vhd. `upload` sends the input file itself when it is already in this format (default: the input's format). AWS S3: vmdk (default), vhd, raw or ova.",
                               valueName: "format"))
    var diskFormat: ImageFormat?

    @Option(help: ArgumentHelp("Glance: private, shared, community or public. Default: Glance's (shared).", valueName: "visibility"))
    var visibility: String?

    @Option(name: .customLong("property"),
            help: ArgumentHelp("Glance: an image property KEY=VALUE (repeatable), over the ones Rehost sets from the guest (hw_disk_bus, hw_vif_model, hw_scsi_model, os_distro, os_version, hw_firmware_type).",
                               valueName: "key=value"))
    var properties: [String] = []

    @Option(name: .customLong("glance-method"),
            help: ArgumentHelp("Glance: put (PUT /file, the default) or glance-direct (stage, then import: the interoperable import workflow).",
                               valueName: "put|glance-direct"))
    var glanceMethod: GlanceUpload.Method = .put

    // AWS
    @Option(name: .customLong("aws-profile"),
            help: ArgumentHelp("AWS: the profile in ~/.aws/credentials and ~/.aws/config. Default: AWS_PROFILE, else the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN environment, else `default`. Endpoints: AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_EBS/_EC2/_S3.",
                               valueName: "name"))
    var awsProfile: String?

    @Option(name: .customLong("aws-region"), help: ArgumentHelp("AWS: the region. Default: AWS_REGION, AWS_DEFAULT_REGION, or the profile's.", valueName: "region"))
    var awsRegion: String?

    @Flag(name: .customLong("ena"), inversion: .prefixedNo,
          help: "AWS: mark the AMI as having ENA (Elastic Network Adapter) support, which newer instance types require. Default with convert: when the kernel the disk boots has the ena driver (a module or built in); with upload and export: no.")
    var ena: Bool?

    @Flag(name: .customLong("sriov"), inversion: .prefixedNo,
          help: "AWS: mark the AMI for Intel 82599 VF networking (sriovNetSupport simple). Default with convert: when the boot kernel has ixgbevf; with upload and export: no.")
    var sriov: Bool?

    @Flag(name: .customLong("no-register"), help: "AWS EBS: leave the snapshot without registering an AMI.")
    var noRegister = false

    @Option(name: .customLong("s3-bucket"), help: ArgumentHelp("AWS S3: the bucket the image goes to.", valueName: "bucket"))
    var s3Bucket: String?

    @Flag(name: .customLong("create-bucket"), help: "AWS S3: create the bucket if it does not exist.")
    var createBucket = false

    @Option(name: .customLong("s3-key"), help: ArgumentHelp("AWS S3: the object key. Default: the name of the file sent (the -o output of that format, the input, or the image name plus the format's extension).", valueName: "key"))
    var s3Key: String?

    @Option(name: .customLong("aws-import"),
            help: ArgumentHelp("AWS S3: what VM Import makes of the object: image (ImportImage, an AMI; default), snapshot (ImportSnapshot), or none (the upload only).",
                               valueName: "image|snapshot|none"))
    var awsImport: String = "image"

    @Option(name: .customLong("aws-role-name"), help: ArgumentHelp("AWS S3: the VM Import service role. Default: vmimport.", valueName: "name"))
    var awsRoleName: String?

    @Option(name: .customLong("upload-parallelism"),
            help: ArgumentHelp("Requests in flight at once (EBS blocks, S3 parts). Default: 16 for EBS, 4 for S3.", valueName: "n"))
    var parallelism: Int?

    func validate(target: UploadTarget?) throws {
        guard let target else { return }
        if let parallelism, !(1...64).contains(parallelism) {
            throw ValidationError("--upload-parallelism \(parallelism): expected 1 to 64")
        }
        for property in properties where !property.contains("=") || property.hasPrefix("=") {
            throw ValidationError("--property \(property): expected KEY=VALUE")
        }
        if let visibility, !["private", "shared", "community", "public"].contains(visibility) {
            throw ValidationError("--visibility \(visibility): expected private, shared, community or public")
        }
        if target == .awsS3, s3Bucket == nil {
            throw ValidationError("--to aws-s3 needs --s3-bucket BUCKET")
        }
        if !["image", "snapshot", "none"].contains(awsImport) {
            throw ValidationError("--aws-import \(awsImport): expected image, snapshot or none")
        }
        if let diskFormat {
            switch target {
            case .glance where diskFormat == .ova:
                throw ValidationError("--disk-format ova: Glance takes an OVA's disk; use vmdk (or upload the .ova itself, which goes as container_format ova)")
            case .awsS3 where diskFormat == .qcow2 || diskFormat == .vdi || diskFormat == .vhdx:
                throw ValidationError("--disk-format \(diskFormat.rawValue): VM Import takes vmdk, vhd, raw or ova")
            case .awsEBS:
                throw ValidationError("--disk-format: an EBS snapshot holds the disk's blocks, not a file format")
            default: break
            }
        }
    }

    var parsedProperties: [String: String] {
        var result: [String: String] = [:]
        for property in properties {
            let parts = property.split(separator: "=", maxSplits: 1)
            result[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        return result
    }
}
