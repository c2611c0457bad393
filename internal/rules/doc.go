// Package rules is Vigil's rule language and engine. Rule files are read,
// checked and compiled once by Load; the resulting Set evaluates every event
// against the rules for its kind and emits alert events.
//
// # Rule files
//
// A rule file is YAML with four optional sections:
//
//	lists:
//	  - name: shell_binaries
//	    items: [/bin/sh, /bin/bash, /usr/bin/bash, /usr/bin/dash, /usr/bin/zsh]
//	macros:
//	  - name: spawned_by_web_server
//	    condition: process.parent.name in ["nginx", "apache2", "httpd"]
//	rules:
//	  - id: exec-from-writable-dir       # unique; lower case letters, digits and -
//	    name: Program run from a world-writable directory
//	    description: ...
//	    severity: warning                 # info, notice, warning, error, critical
//	    tags: [execution]
//	    mitre: [T1059]                    # ATT&CK technique ids
//	    on: [exec]                        # exec, fork, exit, file, cred, net, kernel
//	    condition: |
//	      process.executable.startsWith("/tmp/") && !(process.executable in shell_binaries)
//	    exceptions:                       # any that holds suppresses the alert
//	      - name: test-runner
//	        condition: process.parent.executable == "/usr/local/go/bin/go"
//	    output: "{process.executable} run by {process.parent.executable} (pid {process.pid})"
//	    response: alert                   # alert (default), kill, deny, block-ip, isolate-host, freeze
//	    dry_run: false                    # true: report the response, do not carry it out
//	    enabled: true                     # the default
//	    watch:                            # what the kernel must report for this rule
//	      writes: [/etc/passwd]
//	      reads: [/etc/shadow]
//	    tests:
//	      - name: binary in /tmp
//	        match: true
//	        event: {event.action: exec, process.executable: /tmp/x}
//	overrides:
//	  - id: some-default-rule
//	    enabled: false
//
// id, name, severity, on and condition are required. Files are read from
// each Source in lexical order, sources in the order given (the built-in
// defaults first, then the user's directories). A later file's list, macro
// or rule replaces an earlier one of the same name or id (Set.Notices
// reports it, for a debug log); two in the same file are an error. A list
// entry with "append: true" adds its items to an existing list instead.
// An override changes a rule by id: enabled, severity, response, dry_run and
// output replace the rule's, exceptions are added to its own. A response
// other than alert must be one Vigil can carry out for the rule's condition
// (docs/response.md); Load refuses it otherwise, with the reason.
//
// # Conditions
//
// Conditions are CEL expressions (https://cel.dev) over the fields of the
// event, named as in Vigil's JSON output, and must be boolean. The fields are
// typed, so a misspelt field, a string compared with a number or a condition
// that is not boolean is an error at load time. Ids are strings, as in ECS
// (user.id == "0"); numbers are ints; lists are lists of strings. Fields a
// kind does not have read as "", 0, false or an empty list.
//
//	event        action (exec, fork, exit, or the operation: open, connect, setuid, mount...),
//	             kind (exec, fork, exit, file, cred, net, kernel), outcome (success, failure;
//	             empty for exec, fork and exit)
//	error        code (EPERM, ENOENT... when the syscall failed)
//	process      pid, name, executable, args, args_count, command_line, working_directory,
//	             entity_id, user.id, real_user.id, group.id, real_group.id, script, filename,
//	             args_truncated, path_truncated, from_procfs, cgroup_id,
//	             exit_code, exit_signal (exit events),
//	             secure_exec, file_unlinked, stdin_socket, stdout_socket, stderr_socket (exec events),
//	             parent (the same fields but exit_*, exec flags, parent and ancestors; its pid
//	             is the parent pid when the parent is not known),
//	             ancestors (list of {pid, entity_id, name, executable, args}, grandparent first)
//	user         id (real uid), audit_id (login uid; empty when unset)
//	group        id (real gid)
//	file         path, name, directory, target_path, target_name, target_directory, raw_path,
//	             target_raw_path, op, created,
//	             write, watched, path_resolved, mode (permission bits, int), open_flags,
//	             uid, gid (chown's new owner; empty when unchanged)
//	source       ip, port (the local end)
//	destination  ip, port (the remote end)
//	network      type (ipv4, ipv6, unix), transport (tcp, udp...), direction (egress, ingress)
//	dns          question.name, question.type
//	cred         op, args (list of int), old and new: uid, euid, suid, fsuid, gid, egid,
//	             sgid, fsgid, cap_effective, cap_permitted (ints)
//	kernel       op, flags (list of names: CLONE_NEWUSER...), arg, arg_name, target_pid,
//	             source, target, fstype, name, path, params
//	container    id, name, image (empty until containers are resolved)
//	host         name
//
// Fields lists them all with their types.
//
// Besides CEL's operators, macros (exists, all, ...) and string functions
// (startsWith, endsWith, contains, matches), conditions can use CEL's
// strings, math and sets extensions and:
//
//	basename(path), dirname(path)    as path.Base and path.Dir; "" stays ""
//	s.startsWithAny(list)            s starts with one of the strings of list
//	s.endsWithAny(list), s.containsAny(list)
//
// # Lists and macros
//
// A list is a constant list of strings (or of integers, when every item is
// one) that conditions name like a field: process.name in shell_binaries.
// A macro is a named boolean condition that conditions use as an
// identifier: spawned_by_web_server && ... It may use lists and other
// macros, in any order across files; a cycle is an error. Macros are
// inlined into the conditions that use them when the rules are compiled.
// List and macro names are lower case letters, digits and _.
//
// # Exceptions
//
// A rule's exceptions are named conditions: when the rule's condition holds
// and any exception holds too, there is no alert. An exception that fails to
// evaluate (an index out of range, say) does not suppress.
//
// # Output
//
// output is the alert's message: text with {field} placeholders naming any
// field a condition can read; {{ and }} are literal braces. Values are
// inserted as they are and never interpreted, so a file named
// "{process.pid}" stays that text. Without output, the message is the
// rule's name.
//
// # Tests
//
// A rule's tests are events, written as a mapping of field names (dotted,
// or nested mappings) to values, and whether the rule must match each:
//
//	tests:
//	  - name: web shell
//	    match: true
//	    event:
//	      event.action: exec
//	      process.executable: /bin/sh
//	      process.parent: {name: nginx}
//	      process.ancestors: [{name: systemd, pid: 1}]
//
// The event's kind comes from event.action or event.kind, else from the
// fields set (file.* make a file event), else from the rule's first kind.
// Fields derived from others (file.name, process.command_line,
// network.direction) cannot be set; event.outcome "failure" sets a failed
// return value. Set.RunTests runs each test against its rule alone: its
// kinds, condition and exceptions, and says what decided.
//
// # Errors
//
// Load reports every problem of every file at once as a *LoadError, one
// line each, with the file, line and column of the problem, inside
// conditions too:
//
//	rules.yaml:12:7: unknown field "procss.name" (did you mean "process.name"?)
//	rules.yaml:14:32: unknown list or macro "shel_binaries" (did you mean "shell_binaries"?)
//	rules.yaml:20:5: unknown key "condtion" in rule (want condition, description, ...)
//	rules.yaml:31:16: condition is not boolean: it is string
//	rules.yaml:33:36: unknown field "procss.name" in output
//	rules.yaml:40:9: duplicate rule id "r" (first at line 2)
//	rules.yaml:2:11: macro cycle: a -> b -> a
//
// # Evaluation
//
// Set.Eval evaluates the enabled rules for the event's kind, in load order,
// and emits an alert event made by event.NewAlert for each match. Each rule
// and its exceptions run as one compiled CEL program against an activation
// that reads the event's fields on demand; Eval reuses that activation and
// is not safe for concurrent use. Tests of a field against constants
// (==, !=, in a list, startsWith, startsWithAny...) compare Go strings
// directly, without CEL's boxing.
//
// The rules of a kind are indexed by their guards: a test of a field
// against constants (event.action == "connect", process.name in
// recon_tools, file.write) that must hold for the condition to be true,
// taken from the top-level && of the condition, or from every branch of a
// top-level ||, macros included. An event is evaluated only against the
// rules whose guard holds and those without one, so a rule is cheapest when
// its condition starts with such a test.
//
// Set.Needs tells the daemon which kinds and watched paths the enabled
// rules need from the kernel.
//
// # Recordings
//
// WriteRecord and ReadRecords read and write the recording format of
// `vigil run --record` and `vigil replay`: JSON lines that keep every field
// of event.Event exactly, unlike the ECS output.
package rules
