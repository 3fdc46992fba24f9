#!/bin/sh
# Four processes printing different numbers. In Python:
#
#     def f(l, i):
#         with l: print('hello world', i)
#     for num in range(4): Process(target=f, args=(lock, num)).start()
#
# drover runs one task per input line, four at once (-j 4), each in a
# process of its own, and prints their output in input order: no lock
# needed for the lines not to mix.
set -eu
printf '0\n1\n2\n3\n' |
    drover map hello -j 4 --function 'hello=exec:awk {print("hello","world",$1)}'
