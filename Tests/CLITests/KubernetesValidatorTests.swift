import Foundation
import Testing
import TestSupport

/// The offline Kubernetes check (Tests/Tools/k8s-validate.py, kubernetes 37.0.2's models) that the
/// Job printed by `rehost batch emit kubernetes` will go through: the Indexed Job of
/// /work/shared/BATCH-AND-UPLOAD-FACTS.md (1.2) passes, and each kind of mistake it must catch is
/// caught and named by its path. Nothing here has run against a real API server.
struct KubernetesValidatorTests {
    /// The sample Job of the facts file, verbatim.
    static let sampleJob = """
        apiVersion: batch/v1
        kind: Job
        metadata: {name: rehost-batch}
        spec:
          completionMode: Indexed        # JOB_COMPLETION_INDEX = 0..completions-1 in each pod
          completions: 10                # = manifest entries
          parallelism: 3
          backoffLimitPerIndex: 2        # retries per image, not per Job (GA in 1.33)
          maxFailedIndexes: 10           # keep running the other images
          podFailurePolicy:
            rules:
            - action: FailIndex          # permanent failure code: do not retry that image
              onExitCodes: {containerName: rehost, operator: In, values: [64]}
          template:
            spec:
              restartPolicy: Never       # required by backoffLimitPerIndex
              securityContext: {runAsNonRoot: true, runAsUser: 65534}
              containers:
              - name: rehost
                image: registry.example/rehost:latest
                command: ["rehost", "batch", "/data/manifest.jsonl", "--index-from-env", "--results", "/data/results"]
                volumeMounts: [{name: data, mountPath: /data}]
              volumes: [{name: data, persistentVolumeClaim: {claimName: rehost-data}}]

        """

    /// The sample with `original` replaced by `replacement` once; the test fails if it is not there.
    static func variant(_ original: String, _ replacement: String) throws -> String {
        let range = try #require(sampleJob.range(of: original), "sample has no \(original)")
        return sampleJob.replacingCharacters(in: range, with: replacement)
    }

    @Test func sampleJobPasses() throws {
        let (ok, lines) = try KubernetesValidator.validate(yaml: Self.sampleJob)
        #expect(ok, "\(lines)")
        #expect(lines == ["ok: 1 documents"])
    }

    @Test func unknownFieldIsNamedByItsPath() throws {
        let yaml = try Self.variant("        image: registry.example/rehost:latest\n",
                                    "        image: registry.example/rehost:latest\n        imagePullPolicyy: Always\n")
        let (ok, lines) = try KubernetesValidator.validate(yaml: yaml)
        #expect(!ok)
        #expect(lines.contains { $0.hasPrefix("spec.template.spec.containers[0].imagePullPolicyy: unknown field") }, "\(lines)")
        #expect(lines.count == 1, "\(lines)")
    }

    @Test func backoffLimitPerIndexNeedsIndexedMode() throws {
        let yaml = try Self.variant("  completionMode: Indexed        # JOB_COMPLETION_INDEX = 0..completions-1 in each pod\n", "")
        let (ok, lines) = try KubernetesValidator.validate(yaml: yaml)
        #expect(!ok)
        #expect(lines.contains { $0.hasPrefix("spec.backoffLimitPerIndex: ") && $0.contains("Indexed") }, "\(lines)")
    }

    @Test func volumeMountMustNameAVolume() throws {
        let yaml = try Self.variant("volumeMounts: [{name: data,", "volumeMounts: [{name: scratch,")
        let (ok, lines) = try KubernetesValidator.validate(yaml: yaml)
        #expect(!ok)
        #expect(lines.contains { $0.hasPrefix("spec.template.spec.containers[0].volumeMounts[0].name: ") && $0.contains("scratch") }, "\(lines)")
        #expect(lines.count == 1, "\(lines)")
    }

    @Test func wrongTypeIsRefused() throws {
        let yaml = try Self.variant("runAsNonRoot: true", "runAsNonRoot: \"yes\"")
        let (ok, lines) = try KubernetesValidator.validate(yaml: yaml)
        #expect(!ok)
        #expect(lines.contains { $0.hasPrefix("spec.template.spec.securityContext.runAsNonRoot: expected a boolean") }, "\(lines)")
        #expect(lines.count == 1, "\(lines)")
    }

    /// A few more of the rules, each alone: what the server would refuse and the client would not.
    @Test(arguments: [
        ("values: [64]", "values: [0, 64]", "spec.podFailurePolicy.rules[0].onExitCodes.values[0]: "),
        ("restartPolicy: Never ", "restartPolicy: OnFailure ", "spec.template.spec.restartPolicy: "),
        ("completions: 10 ", "completions: \"10\" ", "spec.completions: expected an integer"),
        ("- name: rehost\n", "- name: Rehost_1\n", "spec.template.spec.containers[0].name: "),
        ("metadata: {name: rehost-batch}", "metadata: {name: rehost-batch, labelz: {a: b}}", "metadata.labelz: unknown field"),
        ("        image: registry.example/rehost:latest\n", "", "spec.template.spec.containers[0].image: "),
    ])
    func otherMistakesAreRefused(original: String, replacement: String, expectedPrefix: String) throws {
        let (ok, lines) = try KubernetesValidator.validate(yaml: try Self.variant(original, replacement))
        #expect(!ok)
        #expect(lines.contains { $0.hasPrefix(expectedPrefix) }, "\(lines)")
    }

    /// What the emitted Job may grow: the index from the pod's annotation, resources with plain
    /// numbers (the API server takes `cpu: 1`; the client's models want strings), an emptyDir
    /// with a size limit, a Pod-condition rule. All valid, so no false alarms.
    @Test func richerJobPasses() throws {
        let yaml = """
            apiVersion: batch/v1
            kind: Job
            metadata: {name: rehost-batch, labels: {app.kubernetes.io/name: rehost}}
            spec:
              completionMode: Indexed
              completions: 3
              parallelism: 2
              backoffLimitPerIndex: 2
              maxFailedIndexes: 3
              podReplacementPolicy: Failed
              ttlSecondsAfterFinished: 86400
              podFailurePolicy:
                rules:
                - action: Ignore
                  onPodConditions: [{type: DisruptionTarget}]
                - action: FailIndex
                  onExitCodes: {containerName: rehost, operator: In, values: [1, 64]}
              template:
                metadata: {labels: {app.kubernetes.io/name: rehost}}
                spec:
                  restartPolicy: Never
                  securityContext: {runAsNonRoot: true, runAsUser: 65534, runAsGroup: 65534, fsGroup: 65534}
                  containers:
                  - name: rehost
                    image: registry.example/rehost:latest
                    args: ["batch", "run", "/data/manifest.jsonl", "--results", "/data/results"]
                    env:
                    - name: REHOST_INDEX
                      valueFrom: {fieldRef: {fieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}
                    resources: {requests: {cpu: 1, memory: 2Gi}, limits: {cpu: "2", memory: 4Gi}}
                    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
                    volumeMounts: [{name: data, mountPath: /data}, {name: tmp, mountPath: /tmp}]
                  volumes:
                  - {name: data, persistentVolumeClaim: {claimName: rehost-data}}
                  - {name: tmp, emptyDir: {sizeLimit: 10Gi}}

            """
        let (ok, lines) = try KubernetesValidator.validate(yaml: yaml)
        #expect(ok, "\(lines)")
        let (badOK, badLines) = try KubernetesValidator.validate(yaml: yaml.replacingOccurrences(of: "drop: [ALL]", with: "drop: ALL"))
        #expect(!badOK)
        #expect(badLines.contains { $0.hasPrefix("spec.template.spec.containers[0].securityContext.capabilities.drop: expected a list") }, "\(badLines)")
    }

    /// Every document of a multi-document file is checked, with its index in the path.
    @Test func everyDocumentIsChecked() throws {
        let yaml = """
            apiVersion: v1
            kind: PersistentVolumeClaim
            metadata: {name: rehost-data}
            spec: {accessModes: [ReadWriteMany], resources: {requests: {storage: 100Gi}}}
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: rehost-manifest}
            data: {manifest.jsonl: "{}"}
            ---

            """ + Self.sampleJob
        let (ok, lines) = try KubernetesValidator.validate(yaml: yaml)
        #expect(ok, "\(lines)")
        #expect(lines == ["ok: 3 documents"])
        let (badOK, badLines) = try KubernetesValidator.validate(yaml: yaml.replacingOccurrences(of: "data: {manifest", with: "dta: {manifest"))
        #expect(!badOK)
        #expect(badLines.contains { $0.hasPrefix("documents[1].dta: unknown field") }, "\(badLines)")
    }
}
