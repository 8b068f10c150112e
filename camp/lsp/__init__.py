"""`camp lsp`: the language server (pygls) an editor starts on stdio.

    server.py     the protocol: which request calls what, Span <-> Range in the client's position units
    checking.py   a workspace as the editor holds it: open files from memory, the rest from disk, checked
                  by compiler.check exactly as `camp check` does; the index hover, completion and definition read

The answers themselves (what a name is, what may be typed) live in compiler.editor, free of any protocol.
Nothing here is imported by `camp check`.
"""
