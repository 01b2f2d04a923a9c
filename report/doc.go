// Package report turns a recording folder into one self-contained HTML page: report.html.
//
//	err := report.WriteFile("recordings/standup-42") // manifest.json (+ stats.jsonl) → report.html
//
// [Render] writes the document for a manifest and its decoded stats samples (nil for a
// record-only job); [WriteFile] reads a recording folder and writes report.html atomically
// (report.html.part, then a rename); [ReadSamples] and [ReadSampleLog] decode a stats.jsonl, one
// monitor.Sample per line, skipping a line cut short by a crash and counting garbled lines in
// the middle (ReadSampleLog returns the count and line numbers; ReadSamples only the samples).
//
// The page loads nothing: CSS is inline, the timeline and plots are inline SVG, there is no
// script, no font and no image by URL, and a Content-Security-Policy meta tag (default-src
// 'none') makes sure of it, so a report can be mailed, archived or opened from disk. The output
// is a function of the input only (no clock, sorted iteration), so the same recording gives the
// same bytes. Every manifest string (peer ids, metadata, channel, causes, messages) is user input
// and goes through html/template's contextual escaping; none is concatenated into markup.
//
// # Content
//
//   - Header: recording id, channel, status, mode, start, end, duration, attempts (table), summary
//     figures, and notes (no stats, missing stats file, skipped lines, still recording).
//   - Timeline (SVG): a time axis in seconds from the recording start; one group per participant
//     (its name row carries its sessions and participant alerts), one lane per logical track
//     (peer + track key + kind; label: key, role when it differs, kind, codec). A lane shows its
//     files as bars from File.StartOffsetMs for DurationMs (partial files hatched with a dashed
//     border), gaps inside them (File.Gaps, StartMs relative to the file) coloured by cause,
//     keyframe waits, and alerts as a band under the bars from raise to clear (hatched when
//     never cleared). Lanes without files (monitor-only jobs) show the track's active spans from
//     the stats instead: from the start of the first interval with the track to the end of the
//     last, split where the track is missing from samples. Reconnects (sessions after a
//     participant's first) are dashed lines through its lanes; attempts after the first are
//     dashed lines through the whole timeline. Tracks and participants known only from the
//     stats or alerts get lanes and groups too. Every mark has an SVG <title> tooltip.
//   - Plots (SVG line charts on the same time axis, so they line up with the timeline): bitrate
//     per track (kbps), loss per track (interval LossPct solid, LossBeforeRecoveryPct dashed, in
//     %), and audio level per audio track that sent levels (dBov; a nil Level breaks the line).
//     Lines break where a track is missing from samples or the samples stop. Each line is
//     downsampled to at most [MaxPlotPoints] points with min/max buckets, so spikes survive
//     and hours of stats stay a small page.
//   - Tables: per-track quality (Track.Quality; "not monitored" when nil), alerts (raise → clear
//     pairs), participants (metadata), and the files (collapsed).
//
// # DOM
//
// Stable ids and classes for tests and for scripts that post-process a report:
//
//	#report                    <main>; data-recording = recording id
//	#recording-id #status      title and status badge (data-status)
//	#channel #mode #started #ended #duration #attempts-count   header facts
//	#attempts .attempt-row     attempts table
//	#notes .note               notes on the data
//	#timeline                  the timeline <svg>
//	  .participant[data-peer]                        a participant's group (<g>)
//	    .session[data-session] (.reconnect)          a session start; .reconnect for later ones
//	    .lane[data-peer][data-track][data-kind]      a logical track's lane (<g>); data-track is the key
//	      .file (.partial)[data-path]                a file bar (<rect>)
//	      .span                                      an active span from the stats (no files)
//	      .gap[data-cause][data-count]               a gap (data-count > 1: merged neighbours)
//	      .kfwait                                    waiting for a keyframe
//	    .alert[data-code] (.cleared | .open)         an alert, raised → cleared (or still open);
//	                                                 on a lane, a participant row or the
//	                                                 .recording-alerts row (alerts without peer)
//	  .attempt                                       start of an attempt after the first
//	#plots                     plots section; #no-samples when there are no samples
//	  #plot-bitrate #plot-loss #plot-level           the plot <svg>s (a plot without series is a
//	                                                 #plot-…-box with a .empty note instead)
//	    .series[data-peer][data-track][data-kind][data-metric][data-points]
//	                                                 one line (<path>); data-metric is bitrate,
//	                                                 loss, loss-before-recovery or level
//	  .legend-item[data-peer][data-track][data-kind] a plot legend entry
//	#quality .quality-row[data-peer][data-track][data-kind]   quality table (.no-quality cell when nil)
//	#alerts .alert-row[data-code][data-peer]         alerts table; #no-alerts when there are none
//	#participants .participant-row[data-peer]        participants table
//	#files .file-row                                 files table (inside <details id="files-section">)
package report
