# Bash completion for xenith's xe. Install it as
# /etc/bash_completion.d/xe (or source it from ~/.bashrc).
#
# Completes command names, their arguments (name=, --switches) and the
# values of object arguments (uuid=, vm=, sr-uuid=, template=...), which
# it asks the server for through `xe __complete`, so the same -s/-u/-pw
# options already on the line apply.

_xe()
{
    local line="${COMP_LINE:0:$COMP_POINT}"
    local IFS=$'\n'
    local -a cands
    # xe prints the candidates for what bash completes: the part of the
    # word after its last '=' or ':' (see COMP_WORDBREAKS).
    cands=($("${COMP_WORDS[0]}" __complete "$line" 2>/dev/null)) || return 0

    COMPREPLY=()
    local c nospace=0
    for c in "${cands[@]}"; do
        [[ "$c" == *[=:] ]] && nospace=1
        # Names may hold spaces ("Debian Bookworm 12"): escape them.
        COMPREPLY+=("$(printf '%q' "$c")")
    done
    if ((nospace)); then
        compopt -o nospace 2>/dev/null
    fi
    return 0
}

complete -F _xe xe
