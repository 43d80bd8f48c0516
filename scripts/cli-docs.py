#!/usr/bin/env python3
"""Regenerates the per-command sections of docs/cli.md from `qiusuo <command> --help`.

Usage: scripts/cli-docs.py [path/to/qiusuo]   (default: build/qiusuo)
Every subcommand the binary lists gets a section `## qiusuo <command>` holding its --help text;
existing sections are updated in place (their order kept), new ones are appended. The text
above the first section (the table of machine-readable outputs) is left as it is."""
import re, subprocess, sys

exe = sys.argv[1] if len(sys.argv) > 1 else 'build/qiusuo'
top = subprocess.run([exe, '--help'], capture_output=True, text=True).stdout
cmds = []
in_sub = False
for line in top.splitlines():
    if line.strip().startswith('Subcommands:'):
        in_sub = True
        continue
    if in_sub:
        m = re.match(r'^  (\S+)', line)
        if m:
            cmds.append(m.group(1))
        elif line.strip() == '' or line.startswith('   '):
            continue  # a description's continuation line
        else:
            break

def help_of(cmd):
    out = subprocess.run([exe, cmd, '--help'], capture_output=True, text=True).stdout
    return re.sub(r'Usage: \S*qiusuo ', 'Usage: qiusuo ', out).rstrip() + '\n'

path = 'docs/cli.md'
doc = open(path).read()
head, *rest = re.split(r'(?m)^## qiusuo ', doc)
sections = {}
order = []
for chunk in rest:
    name = chunk.split('\n', 1)[0].strip()
    sections[name] = chunk
    order.append(name)
for c in cmds:
    if c not in order:
        order.append(c)
out = head
for name in order:
    if name not in cmds:  # a command that no longer exists
        continue
    out += f'## qiusuo {name}\n\n```\n{help_of(name)}\n```\n\n'
open(path, 'w').write(out.rstrip() + '\n')
print(f'{path}: {len(cmds)} commands')
