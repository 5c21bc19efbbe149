yum update -y
cat /etc/redhat-release
df -h
vi /etc/sysconfig/network-scripts/ifcfg-eth0
service network restart
tail -f /var/log/messages
