"""The ground floor: what every program here needs and no floor above owns.

``process``: a child process's life (free ports, SIGTERM as Ctrl-C, stopping
a process group, waiting until something is ready); ``cli``: how a program
starts and fails (logging, signals, one-line errors, exit codes 1 and 2);
``results``: result files (JSON and Markdown, whole or not at all, headed by
when, where and with what they were measured); ``versions``: that head;
``files``: a file's digest.

It imports nothing of this project but the wire-level ``triton_frcnn.files``.
The client distribution keeps its own small copies (its polling loop, its
one-line errors) because it installs alone, without this package.
"""
