//! A chart-shaped application, as `helm template` renders a typical chart (its `crds/`
//! first, then the templates: ServiceAccount, Role, RoleBinding, ConfigMap, Deployment,
//! Service, Ingress, HorizontalPodAutoscaler, PodDisruptionBudget, a StatefulSet with its
//! headless Service, and one custom object), installed with the real kubectl on both stores
//! with `ringfence sim-nodes` running the pods: everything is accepted, the workloads become
//! Ready, and uninstalling removes all of it.

mod common;

use std::time::Duration;

use common::sim::SimNodes;
use common::{Backend, Cluster, eventually};

const CRDS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: backups.shop.example.com
  labels: {app.kubernetes.io/name: shop, app.kubernetes.io/managed-by: Helm}
spec:
  group: shop.example.com
  scope: Namespaced
  names: {plural: backups, singular: backup, kind: Backup, shortNames: [bk]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [schedule]
            properties:
              schedule: {type: string}
              keep: {type: integer, minimum: 1, default: 7}
    additionalPrinterColumns:
    - {name: Schedule, type: string, jsonPath: .spec.schedule}
"#;

const TEMPLATES: &str = r#"
apiVersion: v1
kind: ServiceAccount
metadata:
  name: shop
  namespace: shop
  labels: LABELS
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: shop, namespace: shop, labels: LABELS}
rules:
- {apiGroups: [""], resources: [configmaps, pods], verbs: [get, list, watch]}
- {apiGroups: [shop.example.com], resources: [backups], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: shop, namespace: shop, labels: LABELS}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: shop}
subjects: [{kind: ServiceAccount, name: shop, namespace: shop}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: shop-config, namespace: shop, labels: LABELS}
data:
  LOG_LEVEL: info
  app.yaml: |
    listen: 8080
    database: shop-db-0.shop-db.shop.svc.cluster.local
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop-web, namespace: shop, labels: LABELS}
spec:
  replicas: 2
  selector: {matchLabels: {app.kubernetes.io/name: shop, app.kubernetes.io/component: web}}
  template:
    metadata:
      labels: {app.kubernetes.io/name: shop, app.kubernetes.io/component: web}
      annotations: {checksum/config: 3f2a}
    spec:
      serviceAccountName: shop
      terminationGracePeriodSeconds: 1
      securityContext: {runAsNonRoot: true, runAsUser: 1000, fsGroup: 1000}
      containers:
      - name: web
        image: registry.example.com/shop/web:1.2.3
        imagePullPolicy: IfNotPresent
        ports: [{name: http, containerPort: 8080, protocol: TCP}]
        envFrom: [{configMapRef: {name: shop-config}}]
        resources:
          requests: {cpu: 100m, memory: 64Mi}
          limits: {cpu: 500m, memory: 128Mi}
        readinessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 5}
        livenessProbe: {httpGet: {path: /healthz, port: http}, initialDelaySeconds: 10}
        volumeMounts: [{name: config, mountPath: /etc/shop, readOnly: true}]
      volumes: [{name: config, configMap: {name: shop-config}}]
---
apiVersion: v1
kind: Service
metadata: {name: shop-web, namespace: shop, labels: LABELS}
spec:
  type: ClusterIP
  selector: {app.kubernetes.io/name: shop, app.kubernetes.io/component: web}
  ports: [{name: http, port: 80, targetPort: http, protocol: TCP}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  namespace: shop
  labels: LABELS
  annotations: {nginx.ingress.kubernetes.io/rewrite-target: /}
spec:
  ingressClassName: nginx
  tls: [{hosts: [shop.example.com], secretName: shop-tls}]
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: shop-web, port: {name: http}}}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: shop-web, namespace: shop, labels: LABELS}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: shop-web}
  minReplicas: 2
  maxReplicas: 5
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: shop-web, namespace: shop, labels: LABELS}
spec:
  minAvailable: 1
  selector: {matchLabels: {app.kubernetes.io/name: shop, app.kubernetes.io/component: web}}
---
apiVersion: v1
kind: Service
metadata: {name: shop-db, namespace: shop, labels: LABELS}
spec:
  clusterIP: None
  selector: {app.kubernetes.io/name: shop, app.kubernetes.io/component: db}
  ports: [{name: sql, port: 5432}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: shop-db, namespace: shop, labels: LABELS}
spec:
  serviceName: shop-db
  replicas: 2
  selector: {matchLabels: {app.kubernetes.io/name: shop, app.kubernetes.io/component: db}}
  template:
    metadata: {labels: {app.kubernetes.io/name: shop, app.kubernetes.io/component: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: db
        image: registry.example.com/shop/db:15
        ports: [{name: sql, containerPort: 5432}]
        env: [{name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
---
apiVersion: shop.example.com/v1
kind: Backup
metadata: {name: nightly, namespace: shop, labels: LABELS}
spec: {schedule: "0 3 * * *"}
"#;

/// The labels helm's templates put on every object of a release.
const LABELS: &str = "{app.kubernetes.io/name: shop, app.kubernetes.io/instance: shop, \
                      app.kubernetes.io/managed-by: Helm, helm.sh/chart: shop-1.2.3}";

fn ready_pods(c: &Cluster, component: &str) -> usize {
    let selector = format!("app.kubernetes.io/component={component}");
    c.json(&["get", "pods", "-n", "shop", "-l", &selector])["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| common::sim::ready(p))
        .count()
}

fn a_chart_installs_becomes_ready_and_uninstalls(b: Backend) {
    let c = Cluster::new(b);
    let _nodes = SimNodes::start(&c, "chart", 2, &[]);
    let crds = c.write("crds.yaml", CRDS);
    let templates = c.write("templates.yaml", &TEMPLATES.replace("LABELS", LABELS));
    let (crds, templates) = (crds.to_str().unwrap(), templates.to_str().unwrap());
    c.ok(&["create", "namespace", "shop"]);
    c.ok(&["apply", "-f", crds]);
    c.ok(&["wait", "--for=condition=Established", "crd/backups.shop.example.com", "--timeout=30s"]);
    let applied = c.ok(&["apply", "-f", templates]);
    assert_eq!(applied.lines().count(), 12, "{applied}");

    let wait = Duration::from_secs(60);
    assert!(
        eventually(wait, || ready_pods(&c, "web") == 2 && ready_pods(&c, "db") == 2),
        "not Ready: {}",
        c.ok(&["get", "pods", "-n", "shop", "-o", "wide"])
    );
    c.ok(&["rollout", "status", "deployment/shop-web", "-n", "shop", "--timeout=30s"]);
    c.ok(&["rollout", "status", "statefulset/shop-db", "-n", "shop", "--timeout=30s"]);
    let pods = c.ok(&["get", "pods", "-n", "shop", "-o", "name"]);
    assert!(pods.contains("pod/shop-db-0") && pods.contains("pod/shop-db-1"), "{pods}");
    assert!(eventually(wait, || {
        c.json(&["get", "pdb", "shop-web", "-n", "shop"])["status"]["disruptionsAllowed"] == 1
    }));
    let backup = c.json(&["get", "backup", "nightly", "-n", "shop"]);
    assert_eq!(backup["spec"]["keep"], 7, "the schema's default: {backup}");
    assert!(c.ok(&["get", "bk", "-n", "shop"]).contains("0 3 * * *"));
    let endpoints = c.json(&["get", "endpoints", "shop-web", "-n", "shop"]);
    let addresses = endpoints["subsets"][0]["addresses"].as_array().map_or(0, Vec::len);
    assert_eq!(addresses, 2, "{endpoints}");
    assert_eq!(
        c.ok(&["get", "ingress", "shop", "-n", "shop", "-o", "name"]).trim(),
        "ingress.networking.k8s.io/shop"
    );
    let hpa = c.json(&["get", "hpa", "shop-web", "-n", "shop"]);
    assert_eq!(hpa["spec"]["maxReplicas"], 5);
    // The chart's own account may read what its Role grants, nothing more.
    let sa = ["--as=system:serviceaccount:shop:shop", "-n", "shop"];
    // (`auth can-i` exits 1 for "no".)
    let can = |verb: &str, what: &str| {
        let out = c.kubectl(&[&["auth", "can-i", verb, what][..], &sa[..]].concat());
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(can("list", "backups.shop.example.com"), "yes");
    assert_eq!(can("delete", "pods"), "no");

    // Uninstall (as helm does: the templates, then the CRDs); what the workloads made goes
    // with them, and only what the cluster gives every namespace stays.
    c.ok(&["delete", "-f", templates, "--wait=true", "--timeout=60s"]);
    let kinds = "pods,deployments,replicasets,statefulsets,controllerrevisions,services,endpoints,\
                 endpointslices,configmaps,serviceaccounts,roles,rolebindings,ingresses,\
                 horizontalpodautoscalers,poddisruptionbudgets,backups";
    let left = || c.ok(&["get", kinds, "-n", "shop", "-o", "name"]);
    let only_defaults = |text: &str| {
        text.lines().all(|l| l == "configmap/kube-root-ca.crt" || l == "serviceaccount/default")
    };
    assert!(eventually(wait, || only_defaults(&left())), "left behind: {}", left());
    c.ok(&["delete", "-f", crds, "--wait=true", "--timeout=60s"]);
    assert!(!c.kubectl(&["get", "crd", "backups.shop.example.com"]).status.success());
    c.ok(&["delete", "namespace", "shop", "--wait=true", "--timeout=60s"]);
}

on_both_backends!(a_chart_installs_becomes_ready_and_uninstalls);
