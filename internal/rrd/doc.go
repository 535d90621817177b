// Package rrd holds round-robin databases of performance statistics, the
// structure xapi keeps per host and per running VM, and the two wire formats
// it serves them in.
//
// A DB has one base step (5 s in xapi) and a set of archives. Every update
// turns each source's raw sample into a rate or value (Gauge, Derive,
// Absolute), spreads it over the base steps it covers with time weighting,
// and each completed base step (a primary data point, PDP) is consolidated
// into every archive: an archive row holds the AVERAGE, MIN, MAX or LAST of
// Steps consecutive PDPs, aligned to multiples of Steps*step in Unix time.
// Rows live in fixed-size rings, so a DB never grows with time, only with
// its number of sources. Unknown values are NaN throughout, as in rrdtool.
//
// Formats:
//
//   - Export and Updates.WriteXML / WriteJSON: rrdtool "xport" updates, the
//     body of xapi's /rrd_updates (XML, or JSON with json=true), rows newest
//     first, columns named "<CF>:<prefix><source>".
//   - DB.WriteDump and ReadDump: rrdtool "dump" XML, served at /host_rrd and
//     /vm_rrd and used to persist a DB. It carries the in-progress state of
//     the current step and row, so a dump taken at any time reloads into a
//     DB that continues exactly where the original was.
package rrd
