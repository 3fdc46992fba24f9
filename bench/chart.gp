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
# Panels without figures (bench/run --only) are left empty.
has(w) = int(system(sprintf('grep -c "^%s," %s || true', w, csv))) > 0
mem = outdir.'/memory.csv'
hasmem = int(system('tail -n +2 '.mem.' | grep -c . || true')) > 0
set multiplot layout 2,3 title 'drover vs gearmand, beanstalkd, multiprocessing.Pool (bench/run)'
set title 'A: no-op tasks/s (log scale)'
set logscale y
if (has('A')) { plot rows('A') using 0:3:xtic(2) with boxes lc rgb '#3060a0' } else { set multiplot next }
unset logscale y
set title 'B: latency, p50 and p99 (us, log scale)'
set logscale y
set key top left
if (has('B')) {
    plot rows('B') using ($0-0.15):4:(0.3):xtic(2) with boxes lc rgb '#3060a0' title 'p50', \
         rows('B') using ($0+0.15):5:(0.3) with boxes lc rgb '#a04030' title 'p99'
} else { set multiplot next }
unset key
unset logscale y
set title 'C: durable tasks/s (log scale)'
set logscale y
if (has('C')) { plot rows('C') using 0:3:xtic(2) with boxes lc rgb '#3060a0' } else { set multiplot next }
unset logscale y
set title 'D: speedup over serial'
set yrange [0:*]
if (has('D')) { plot rows('D') using 0:3:xtic(2) with boxes lc rgb '#3060a0' } else { set multiplot next }
set title 'E: 1 MiB payloads, MB/s'
if (has('E')) { plot rows('E') using 0:3:xtic(2) with boxes lc rgb '#3060a0' } else { set multiplot next }
set title 'Memory: bytes per queued job beyond its payload'
if (hasmem) { plot '< tail -n +2 '.mem using 0:5:xtic(1) with boxes lc rgb '#3060a0' }
unset multiplot
