package pipeline_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomtape/roomtape/internal/testenv"
	"github.com/roomtape/roomtape/pipeline"
	"github.com/roomtape/roomtape/signalling"
)

// freePorts picks n loopback TCP ports (listen on 127.0.0.1:0, then release them) for cluster
// routes, which every node must know before any of them starts.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var lns []net.Listener
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// startCluster runs three nats-server nodes with JetStream in one cluster on loopback.
func startCluster(t *testing.T) []*pipeline.Embedded {
	t.Helper()
	ports := freePorts(t, 3)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	nodes := make([]*pipeline.Embedded, 3)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i], errs[i] = pipeline.StartEmbedded(pipeline.EmbeddedOptions{
				Name: fmt.Sprintf("n%d", i+1), StoreDir: t.TempDir(), Listen: "127.0.0.1:0",
				ClusterName: "roomtape-test", ClusterListen: fmt.Sprintf("127.0.0.1:%d", ports[i]), Routes: routes,
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i+1, err)
		}
		n := nodes[i]
		t.Cleanup(n.Shutdown)
	}
	return nodes
}

// A real 3-node cluster with the stream, consumer and bucket at R3: jobs flow, the node that
// leads the jobs stream is stopped, and jobs submitted afterwards still run to the end.
func TestClusterR3KeepsFlowing(t *testing.T) {
	nodes := startCluster(t)
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.ClientURL())
	}
	e := &jobEnv{t: t, url: testenv.SignalServer(t, signalling.ServerConfig{}), out: t.TempDir(), tr: testenv.Transport(t), logger: testLogger(t)}
	e.cfg = pipeline.NATSConfig{URL: strings.Join(urls, ","), Replicas: 3, AckWait: 5 * time.Second, RequestTimeout: 5 * time.Second}
	e.cfg.Defaults()
	e.q = e.clusterQueue("client")
	for _, id := range []string{"w-a", "w-b"} {
		cfg := e.workerConfig(id, 2)
		q := e.clusterQueue(id)
		cfg.Recorder.Dir = e.out
		w, err := pipeline.NewWorker(q, cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = w.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}

	js, err := jetstream.New(e.q.Conn())
	if err != nil {
		t.Fatal(err)
	}
	info := streamInfo(t, js, e.cfg.Stream)
	if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("jobs stream: replicas %d, cluster %+v", info.Config.Replicas, info.Cluster)
	}
	runJobs := func(prefix string, n int) {
		t.Helper()
		var logs []*eventLog
		for i := range n {
			j := job(fmt.Sprintf("%s-%d", prefix, i), fmt.Sprintf("%s-room-%d", prefix, i), time.Second)
			logs = append(logs, e.follow(j.ID))
			e.submit(j)
		}
		for _, l := range logs {
			fin := l.waitType(t, 90*time.Second, pipeline.EventFinished)
			if fin.Manifest == nil {
				t.Errorf("%s finished without manifest", fin.JobID)
			}
		}
	}
	runJobs("before", 4)

	leader := info.Cluster.Leader
	var stopped *pipeline.Embedded
	for _, n := range nodes {
		if n.Server().Name() == leader {
			stopped = n
		}
	}
	if stopped == nil {
		t.Fatalf("stream leader %q is not one of the nodes", leader)
	}
	t.Logf("stopping %s, the jobs stream leader", leader)
	stopped.Shutdown()

	runJobs("after", 4)
	after := streamInfo(t, js, e.cfg.Stream)
	if after.Cluster.Leader == leader || after.Cluster.Leader == "" {
		t.Errorf("stream leader after the stop: %q", after.Cluster.Leader)
	}
	for i := range 4 {
		st, err := e.q.Status(context.Background(), fmt.Sprintf("after-%d", i))
		if err != nil || st.State != pipeline.StateDone {
			t.Errorf("after-%d: %v %+v", i, err, st)
		}
	}
}

// clusterQueue opens a queue over TCP to every node of the cluster.
func (e *jobEnv) clusterQueue(name string) *pipeline.Queue {
	e.t.Helper()
	nc, err := pipeline.Dial(e.cfg, name, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	q, err := pipeline.OpenQueue(ctx, nc, e.cfg, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return q
}

func streamInfo(t *testing.T, js jetstream.JetStream, name string) *jetstream.StreamInfo {
	t.Helper()
	var info *jetstream.StreamInfo
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := js.Stream(ctx, name)
		if err == nil {
			info, err = s.Info(ctx)
		}
		cancel()
		if err == nil && info.Cluster != nil && info.Cluster.Leader != "" {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s info: %v", name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
