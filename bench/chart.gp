# DDSplit against this machine's limits, per record size (bench/run draws it from chart.dat).
# Call: gnuplot -e "datafile='DIR/chart.dat'; outfile='DIR/chart.png'; series='5 6 7 8'" chart.gp
# `series` lists the DDSplit columns of chart.dat that hold data (default: all).
if (!exists("datafile")) datafile = 'chart.dat'
if (!exists("outfile")) outfile = 'chart.png'
if (!exists("series")) series = '5 6 7 8 9'
set terminal pngcairo size 1000,620 font "sans,10"
set output outfile
set title "DDSplit vs this machine's limits (MiB/s of record bytes, concurrency 32, log scales)"
set logscale xy
set xlabel "record size"
set ylabel "MiB/s of record bytes"
set xrange [800:24000000]
set xtics ("1 KiB" 1024, "64 KiB" 65536, "1 MiB" 1048576, "16 MiB" 16777216)
set grid ytics mytics xtics
set key below horizontal maxcols 3
set datafile missing "NaN"
names = "x x x x put,sync=none get,sync=none degraded-get,sync=none put,sync=always get,sync=always"
points = "0 0 0 0 5 7 9 13 11"
cmd = "plot datafile using 1:2 with linespoints lw 2 dt 2 pt 4 title 'memcpy'"
cmd = cmd . ", datafile using 1:3 with linespoints lw 2 dt 2 pt 6 title 'ISA-L encode k+m'"
cmd = cmd . ", datafile using 1:4 with linespoints lw 2 dt 2 pt 8 title 'raw ZeroMQ at fragment size'"
cmd = cmd . ", datafile using 1:10 with lines lw 1 dt 3 lc rgb 'gray40' title 'raw ZeroMQ x k/(k+m) (put wire limit)'"
do for [i = 1:words(series)] {
  c = int(word(series, i))
  cmd = cmd . sprintf(", datafile using 1:%d with linespoints lw 2 pt %s title '%s'", c, word(points, c), word(names, c))
}
eval(cmd)
