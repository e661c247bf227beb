# bash completion for krewind (installed as share/bash-completion/completions/krewind).
#
# Commands and options come from the binary itself (`krewind help`, `krewind help
# CMD`), so a new command or option completes without touching this file;
# recording names are the directories under $KREWIND_TRACES (else traces/) that
# hold a manifest.json or a trace.db; --scenario completes the kernel's scenarios
# (`krewind record --list-scenarios`).

# _krewind_opts CMD: CMD's long and short options, one a line.
_krewind_opts() {
	"${_krewind_bin:-krewind}" help "$1" 2>/dev/null |
		awk '/^options:/ {on = 1; next} on && $1 ~ /^-/ { if ($1 ~ /,$/) { print substr($1, 1, length($1) - 1); print $2 } else print $1 }'
}

# _krewind_recordings: the recording names under the traces directory.
_krewind_recordings() {
	local dir=${KREWIND_TRACES:-traces} d
	for d in "$dir"/*/; do
		d=${d%/}
		[ -e "$d/manifest.json" ] || [ -e "$d/trace.db" ] || continue
		echo "${d##*/}"
	done
}

_krewind() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd="" i
	local _krewind_bin=${COMP_WORDS[0]}
	COMPREPLY=()
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		-*) ;;
		*) cmd=${COMP_WORDS[i]}; break ;;
		esac
	done
	if [ -z "$cmd" ]; then
		if [[ $cur == -* ]]; then
			mapfile -t COMPREPLY < <(compgen -W "--help --version" -- "$cur")
		else
			mapfile -t COMPREPLY < <(compgen -W "$("$_krewind_bin" help 2>/dev/null |
				awk '/^commands:/ {on = 1; next} on && /^$/ {exit} on {print $1}') help" -- "$cur")
		fi
		return
	fi
	if [ "$cmd" = help ]; then
		mapfile -t COMPREPLY < <(compgen -W "$("$_krewind_bin" help 2>/dev/null |
			awk '/^commands:/ {on = 1; next} on && /^$/ {exit} on {print $1}')" -- "$cur")
		return
	fi
	case $prev in
	--scenario)
		mapfile -t COMPREPLY < <(compgen -W "$("$_krewind_bin" record --list-scenarios 2>/dev/null)" -- "$cur")
		return ;;
	--kernel | --symbols | --probe | -o | --output | --dir)
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		return ;;
	esac
	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$(_krewind_opts "$cmd")" -- "$cur")
	elif [ "$cmd" != record ] && [ "$cmd" != ls ]; then
		mapfile -t COMPREPLY < <(compgen -W "$(_krewind_recordings)" -- "$cur")
		[ ${#COMPREPLY[@]} -eq 0 ] && mapfile -t COMPREPLY < <(compgen -f -- "$cur")
	fi
}
complete -F _krewind krewind
