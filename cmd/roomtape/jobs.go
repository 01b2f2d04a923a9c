package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/roomtape/roomtape/pipeline"
)

// clientCmd is the shape shared by status, jobs and stop: load the config, connect, run.
func clientCmd(g *globalFlags, use, short string, args cobra.PositionalArgs,
	run func(ctx context.Context, q *pipeline.Queue, args []string, jsonOut bool, stdout, stderr io.Writer) error) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{Use: use, Short: short, Args: args}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "JSON output")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		return g.runClient(cmd, nil, func(ctx context.Context, q *pipeline.Queue) error {
			return run(ctx, q, a, jsonOut, cmd.OutOrStdout(), cmd.ErrOrStderr())
		})
	}
	return cmd
}

// runClient is g.run for a client of the job queue: fn gets the queue, connected as
// "roomtape <command>" and drained when fn returns.
func (g *globalFlags) runClient(cmd *cobra.Command, bound map[string]*pflag.Flag, fn func(ctx context.Context, q *pipeline.Queue) error) error {
	return g.run(cmd, bound, func(ctx context.Context, lc loadedConfig) error {
		log, err := newLogger(lc.Log, cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		q, done, err := openClientQueue(ctx, lc, "roomtape "+cmd.Name(), log)
		if err != nil {
			return err
		}
		defer done()
		return fn(ctx, q)
	})
}

func newStatusCmd(g *globalFlags) *cobra.Command {
	return clientCmd(g, "status JOB", "Show a job's state: worker, attempt, progress, manifest", cobra.ExactArgs(1),
		func(ctx context.Context, q *pipeline.Queue, args []string, jsonOut bool, stdout, _ io.Writer) error {
			st, err := q.Status(ctx, args[0])
			if err != nil {
				return err
			}
			if jsonOut {
				return writeJSON(stdout, st)
			}
			printState(stdout, st)
			return nil
		})
}

func newJobsCmd(g *globalFlags) *cobra.Command {
	var limit int
	cmd := clientCmd(g, "jobs", "List recent jobs and their state (most recently updated first)", cobra.NoArgs,
		func(ctx context.Context, q *pipeline.Queue, _ []string, jsonOut bool, stdout, _ io.Writer) error {
			list, err := q.List(ctx, limit)
			if err != nil {
				return err
			}
			if jsonOut {
				if list == nil {
					list = []pipeline.JobState{}
				}
				return writeJSON(stdout, list)
			}
			tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "JOB\tSTATE\tWORKER\tATTEMPT\tCHANNEL\tFILES\tSIZE\tUPDATED\tREASON")
			for _, s := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\t%s\n", s.ID, s.State, dash(s.Worker), s.Attempt, s.Channel,
					s.Files, humanBytes(s.Bytes), ago(s.UpdatedAt), truncateText(s.Reason, 60))
			}
			return tw.Flush()
		})
	cmd.Flags().IntVar(&limit, "limit", 50, "show at most this many jobs (0 = all)")
	return cmd
}

func newStopCmd(g *globalFlags) *cobra.Command {
	var wait bool
	cmd := clientCmd(g, "stop JOB", "Stop a job: a queued one never starts, a running one ends within 2 s", cobra.ExactArgs(1),
		func(ctx context.Context, q *pipeline.Queue, args []string, jsonOut bool, stdout, stderr io.Writer) error {
			st, err := q.Stop(ctx, args[0])
			if err != nil {
				return err
			}
			if wait && !st.Terminal() {
				return followJob(ctx, q, st.ID, jsonOut, stdout, stderr)
			}
			if jsonOut {
				return writeJSON(stdout, st)
			}
			switch {
			case st.Terminal() && !st.StopRequested:
				fmt.Fprintf(stdout, "job %s had already ended (%s)\n", st.ID, st.State)
			case st.Terminal():
				fmt.Fprintf(stdout, "job %s stopped (%s)\n", st.ID, orNone(st.Reason))
			default:
				fmt.Fprintf(stdout, "stop requested: job %s (%s on %s) ends within 2 s\n", st.ID, st.State, dash(st.Worker))
			}
			return nil
		})
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the job has ended and print its manifest summary")
	return cmd
}

// printState shows one job state as aligned key: value lines.
func printState(w io.Writer, s pipeline.JobState) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s:\t%v\n", k, v) }
	row("job", s.ID)
	row("state", s.State)
	row("channel", s.Channel)
	if s.Profile != "" {
		row("profile", s.Profile)
	}
	row("worker", dash(s.Worker))
	row("attempt", s.Attempt)
	if s.Reason != "" {
		row("reason", s.Reason)
	}
	if s.StopRequested {
		row("stop requested", true)
	}
	row("participants", s.Participants)
	row("tracks", s.Tracks)
	row("files", fmt.Sprintf("%d (%s)", s.Files, humanBytes(s.Bytes)))
	row("submitted", s.SubmittedAt.Local().Format(time.RFC3339))
	if s.StartedAt != nil {
		row("started", s.StartedAt.Local().Format(time.RFC3339))
	}
	if s.EndedAt != nil {
		row("ended", s.EndedAt.Local().Format(time.RFC3339))
	}
	row("updated", ago(s.UpdatedAt))
	if s.Manifest != "" {
		row("manifest", s.Manifest)
	}
	if len(s.Labels) > 0 {
		var kv []string
		for k, v := range s.Labels {
			kv = append(kv, k+"="+v)
		}
		row("labels", strings.Join(kv, " "))
	}
	_ = tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Truncate(time.Second).String() + " ago"
}

func truncateText(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
