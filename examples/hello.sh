#!/bin/sh
# A process that prints, the drover way. In Python:
#
#     def f(name):
#         print('hello', name)
#     p = Process(target=f, args=('bob',)); p.start(); p.join()
#
# drover runs the function as a task in a process of its own and prints
# what it wrote. Without --broker this is local mode: no daemon needed.
set -eu
drover submit hello --data bob --function 'hello=exec:awk {print("hello",$0)}'
