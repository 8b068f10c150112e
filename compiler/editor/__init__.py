"""What an editor asks about a workspace, answered from the AST and the checked program, without any protocol.

    index_workspace(ws) -> Index          (index.py: every name a file can mention, with its place and hover text)
    symbol_at(index, file, text, offset)  (locate.py: the name under the cursor, resolved as the checker would)
    complete_at(index, text, offset)      (complete.py: what may be typed at the cursor)

camp/lsp speaks the Language Server Protocol and calls these; they never import it, so they are tested and
reused without an editor.
"""
