package deploy

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// decodeStrict decodes one YAML document into out, refusing fields the
// type does not have (a misspelt key would otherwise be dropped).
func decodeStrict(t *testing.T, doc []byte, out any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(doc, out); err != nil {
		t.Fatalf("%T: %v", out, err)
	}
}

// manifests reads every document of k8s/*.yaml but the kustomization, by
// kind.
func manifests(t *testing.T) map[string][][]byte {
	t.Helper()
	files, err := filepath.Glob("k8s/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	byKind := map[string][][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range bytes.Split(b, []byte("\n---\n")) {
			var head struct{ Kind string }
			if err := yaml.Unmarshal(doc, &head); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			byKind[head.Kind] = append(byKind[head.Kind], doc)
		}
	}
	return byKind
}

func TestTheManifestsDecodeAndSayWhatTheNodesNeed(t *testing.T) {
	t.Parallel()
	byKind := manifests(t)
	if len(byKind["StatefulSet"]) != 1 || len(byKind["Service"]) != 2 || len(byKind["PodDisruptionBudget"]) != 1 {
		t.Fatalf("kinds: %v", keys(byKind))
	}
	var ss appsv1.StatefulSet
	decodeStrict(t, byKind["StatefulSet"][0], &ss)
	services := map[string]corev1.Service{}
	for _, doc := range byKind["Service"] {
		var s corev1.Service
		decodeStrict(t, doc, &s)
		services[s.Name] = s
	}
	var pdb policyv1.PodDisruptionBudget
	decodeStrict(t, byKind["PodDisruptionBudget"][0], &pdb)

	peers, ok := services[ss.Spec.ServiceName]
	if !ok || peers.Spec.ClusterIP != corev1.ClusterIPNone || !peers.Spec.PublishNotReadyAddresses {
		t.Fatalf("the StatefulSet's service %q must be headless and publish pods before they are ready: %+v", ss.Spec.ServiceName, peers.Spec)
	}
	c := ss.Spec.Template.Spec.Containers[0]
	args := strings.Join(c.Args, " ")
	replicas := int(*ss.Spec.Replicas)
	if !strings.Contains(args, "--bootstrap-expect="+itoa(replicas)) {
		t.Errorf("args %q: --bootstrap-expect must be the replicas, %d", args, replicas)
	}
	for i := range replicas {
		if want := ss.Name + "-" + itoa(i) + "." + ss.Spec.ServiceName + ":7946"; !strings.Contains(args, want) {
			t.Errorf("args %q: --join lacks %s", args, want)
		}
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Error("no readiness probe on /readyz")
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		t.Error("no preStop pause before the graceful leave")
	}
	if g := ss.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g <= 10+3 {
		t.Error("terminationGracePeriodSeconds must outlast the preStop pause and --shutdown-timeout (10s)")
	}
	if sc := ss.Spec.Template.Spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("pods must run as non-root")
	}
	if len(ss.Spec.VolumeClaimTemplates) != 1 || !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.Name == ss.Spec.VolumeClaimTemplates[0].Name && m.MountPath == envOf(c, "TOLLGATE_DATA_DIR")
	}) {
		t.Error("the data directory must be on the pod's claim")
	}
	if envOf(c, "TOLLGATE_NODE_NAME") != "$(POD_NAME)" {
		t.Error("the node name must be the pod's, a stable Raft identity")
	}
	for _, name := range []string{"TOLLGATE_ADMIN_TOKEN", "TOLLGATE_GOSSIP_KEY", "TOLLGATE_CHECK_TOKEN"} {
		if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
			return e.Name == name && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
		}) {
			t.Errorf("%s must come from a Secret", name)
		}
	}
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Error("the PodDisruptionBudget must allow one node down at a time")
	}
	// Every named target port of the client Service is a container port.
	for _, p := range services["tollgate"].Spec.Ports {
		if !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == p.TargetPort.String() }) {
			t.Errorf("service port %s targets %q, no container port", p.Name, p.TargetPort.String())
		}
	}
}

// Every metric the dashboard and the alerts ask for is one the nodes
// export (README's metrics table lists them all).
func TestTheDashboardAndAlertsAskForMetricsThatExist(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	b, err := os.ReadFile("grafana/tollgate.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &dash); err != nil || len(dash.Panels) == 0 {
		t.Fatalf("grafana/tollgate.json: %v (%d panels)", err, len(dash.Panels))
	}
	exprs := ""
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs += tg.Expr + "\n"
		}
	}
	alerts, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	metric := regexp.MustCompile(`tollgate_[a-z_]+`)
	for _, m := range metric.FindAllString(exprs+string(alerts), -1) {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
		if !bytes.Contains(readme, []byte("`"+base)) {
			t.Errorf("%s is no metric the README lists", m)
		}
	}
}

func envOf(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }
