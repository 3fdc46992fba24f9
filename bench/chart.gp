# chart.gp - bench/run's chart of results.csv and memory.csv: one panel
# per workload and one for memory.
# Usage: gnuplot -e "outdir='bench/out'" bench/chart.gp
set terminal pngcairo size 1400,900 font ",10"
set output outdir.'/results.png'
set datafile separator ','
set style fill solid 0.8 border -1
set boxwidth 0.6
set grid ytics
set xtics rotate by -25
unset key
csv = outdir.'/results.csv'
rows(w) = sprintf('< grep "^%s," %s', w, csv)
set multiplot layout 2,3 title 'drover vs gearmand, beanstalkd, multiprocessing.Pool (bench/run)'
set title 'A: no-op tasks/s (log scale)'
set logscale y
plot rows('A') using 0:3:xtic(2) with boxes lc rgb '#3060a0'
unset logscale y
set title 'B: latency, p50 and p99 (us, log scale)'
set logscale y
set key top left
plot rows('B') using ($0-0.15):4:(0.3):xtic(2) with boxes lc rgb '#3060a0' title 'p50', \
     rows('B') using ($0+0.15):5:(0.3) with boxes lc rgb '#a04030' title 'p99'
unset key
unset logscale y
set title 'C: durable tasks/s (log scale)'
set logscale y
plot rows('C') using 0:3:xtic(2) with boxes lc rgb '#3060a0'
unset logscale y
set title 'D: speedup over serial'
set yrange [0:*]
plot rows('D') using 0:3:xtic(2) with boxes lc rgb '#3060a0'
set title 'E: 1 MiB payloads, MB/s'
plot rows('E') using 0:3:xtic(2) with boxes lc rgb '#3060a0'
set title 'Memory: bytes per queued job beyond its payload'
plot '< tail -n +2 '.outdir.'/memory.csv' using 0:5:xtic(1) with boxes lc rgb '#3060a0'
unset multiplot
